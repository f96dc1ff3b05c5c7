#include "core/card.h"

#include <gtest/gtest.h>

#include <string>

namespace loyalty::core {
namespace {

void ExpectInvalid(std::string_view raw) {
  const auto result = NormalizeCardNumber(raw);
  ASSERT_FALSE(result.ok()) << "accepted: " << raw;
  EXPECT_EQ(result.error().code, code::kInvalidCard);
  EXPECT_FALSE(result.error().message.empty());
}

TEST(CardNumber, AcceptsAValidNumberAsIs) {
  const auto result = NormalizeCardNumber("4111111111111111");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, "4111111111111111");
}

TEST(CardNumber, RemovesSpacesAndDashesFromManualEntry) {
  const auto result = NormalizeCardNumber(" 4111 1111-1111--1111 ");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, "4111111111111111");
}

TEST(CardNumber, AcceptsTheShortestAndLongestLengths) {
  const std::string eight = std::string("1234567") + LuhnCheckDigit("1234567");
  const std::string nineteen =
      std::string("123456789012345678") + LuhnCheckDigit("123456789012345678");
  EXPECT_TRUE(NormalizeCardNumber(eight).ok());
  EXPECT_TRUE(NormalizeCardNumber(nineteen).ok());
}

TEST(CardNumber, RejectsTooShortAndTooLong) {
  const std::string seven = std::string("123456") + LuhnCheckDigit("123456");
  const std::string twenty =
      std::string("1234567890123456789") + LuhnCheckDigit("1234567890123456789");
  ExpectInvalid(seven);
  ExpectInvalid(twenty);
  ExpectInvalid(std::string(10'000, '0'));
}

TEST(CardNumber, RejectsEmptyAndSeparatorsOnly) {
  ExpectInvalid("");
  ExpectInvalid("   ");
  ExpectInvalid("- -");
}

TEST(CardNumber, RejectsLettersAndOtherPunctuation) {
  ExpectInvalid("4111a11111111111");
  ExpectInvalid("4111.1111.1111.1111");
  ExpectInvalid("4111_1111_1111_1111");
  ExpectInvalid("+4111111111111111");
  ExpectInvalid("4111111111111111\n");
  ExpectInvalid(
      std::string("41111111\0"
                  "11111111",
                  17));
}

TEST(CardNumber, RejectsUnicodeDigitsAndSpaces) {
  ExpectInvalid("４１１１１１１１１１１１１１１１");  // full-width digits
  ExpectInvalid("4111\u00a01111 1111 1111");          // no-break space
  ExpectInvalid("4111 1111 1111 111\u0661");          // Arabic-Indic one
}

TEST(CardNumber, RejectsAWrongCheckDigit) {
  ExpectInvalid("4111111111111112");
  ExpectInvalid("79927398710");
}

TEST(CardNumber, ErrorDoesNotEchoTheNumber) {
  const auto result = NormalizeCardNumber("4111111111111112");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message.find("4111111111111112"), std::string::npos);
}

TEST(Luhn, KnownNumbers) {
  EXPECT_TRUE(HasValidLuhn("79927398713"));
  EXPECT_TRUE(HasValidLuhn("4111111111111111"));
  EXPECT_TRUE(HasValidLuhn("0"));
  EXPECT_FALSE(HasValidLuhn("79927398710"));
  EXPECT_FALSE(HasValidLuhn(""));
  EXPECT_FALSE(HasValidLuhn("7992739871x"));
}

TEST(Luhn, CheckDigitMakesEveryPayloadValid) {
  EXPECT_EQ(LuhnCheckDigit("7992739871"), '3');
  EXPECT_EQ(LuhnCheckDigit("411111111111111"), '1');
  for (int n = 0; n < 2000; ++n) {
    const std::string payload = std::to_string(1'000'000 + n * 7919);
    const std::string card = payload + LuhnCheckDigit(payload);
    EXPECT_TRUE(HasValidLuhn(card)) << card;
    // Any other last digit is wrong: Luhn catches every single-digit error.
    std::string wrong = card;
    wrong.back() = static_cast<char>('0' + (card.back() - '0' + 1) % 10);
    EXPECT_FALSE(HasValidLuhn(wrong)) << wrong;
  }
}

TEST(CardHash, MatchesRfc4231TestVector) {
  EXPECT_EQ(CardHash("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CardHash, EmptyKeyAndMessageIsTheKnownDigest) {
  EXPECT_EQ(CardHash("", ""), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(CardHash, DependsOnKeyAndCardAndIsLowercaseHex) {
  const std::string a = CardHash("key-1", "4111111111111111");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(a, CardHash("key-1", "4111111111111111"));
  EXPECT_NE(a, CardHash("key-2", "4111111111111111"));
  EXPECT_NE(a, CardHash("key-1", "79927398713"));
}

TEST(CardHash, SameCardTypedDifferentlyHashesTheSame) {
  const auto typed = NormalizeCardNumber("4111-1111 1111-1111");
  ASSERT_TRUE(typed.ok());
  EXPECT_EQ(CardHash("k", *typed), CardHash("k", "4111111111111111"));
}

}  // namespace
}  // namespace loyalty::core

namespace loyalty::core {
namespace {

TEST(CardHasher, EqualsCardHashForShortLongAndEmptyKeys) {
  const std::string long_key(131, 'k');  // longer than a SHA-256 block
  for (const std::string& key :
       {std::string("Jefe"), long_key, std::string(), std::string(32, '\0')}) {
    const CardHasher hasher(key);
    for (const char* card : {"4111111111111111", "79927398713", ""}) {
      EXPECT_EQ(hasher.Hash(card), CardHash(key, card)) << key.size() << " " << card;
    }
  }
}

}  // namespace
}  // namespace loyalty::core
