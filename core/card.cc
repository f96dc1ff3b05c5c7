#include "core/card.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <stdexcept>

namespace loyalty::core {
namespace {

constexpr size_t kMinDigits = 8;
constexpr size_t kMaxDigits = 19;

// Luhn sum of `digits` where the rightmost digit is doubled when
// `double_rightmost` (computing a check digit) and not doubled otherwise
// (verifying a number that already ends in one).
int LuhnSum(std::string_view digits, bool double_rightmost) {
  int sum = 0;
  bool double_it = double_rightmost;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (double_it) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double_it = !double_it;
  }
  return sum;
}

}  // namespace

Result<std::string> NormalizeCardNumber(std::string_view raw) {
  std::string digits;
  digits.reserve(raw.size());
  for (const char c : raw) {
    if (c >= '0' && c <= '9') {
      // Bound the work on hostile input; the length check below reports it.
      if (digits.size() <= kMaxDigits) digits.push_back(c);
    } else if (c != ' ' && c != '-') {
      // The card number itself is never echoed back: it is personal data.
      return MakeError(code::kInvalidCard,
                       "The card number may contain only digits, spaces and dashes.");
    }
  }
  if (digits.empty()) return MakeError(code::kInvalidCard, "The card number is empty.");
  if (digits.size() < kMinDigits || digits.size() > kMaxDigits) {
    return MakeError(code::kInvalidCard, "The card number must have 8 to 19 digits.");
  }
  if (!HasValidLuhn(digits)) {
    return MakeError(code::kInvalidCard,
                     "The card number's check digit is wrong; it was probably mistyped.");
  }
  return digits;
}

bool HasValidLuhn(std::string_view digits) {
  if (digits.empty()) return false;
  for (const char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  return LuhnSum(digits, false) % 10 == 0;
}

char LuhnCheckDigit(std::string_view payload) {
  return static_cast<char>('0' + (10 - LuhnSum(payload, true) % 10) % 10);
}

namespace {

std::string Hex(const unsigned char* bytes, unsigned int len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[bytes[i] >> 4]);
    hex.push_back(kHex[bytes[i] & 0xf]);
  }
  return hex;
}

void Check(int ok) {
  // Only a broken OpenSSL installation gets here.
  if (ok != 1) throw std::runtime_error("SHA-256 failed");
}

}  // namespace

// HMAC (RFC 2104) with the keyed inner and outer SHA-256 states computed
// once: a hash then costs two short digests and two context copies instead
// of a full HMAC set-up per card.
CardHasher::CardHasher(std::string_view key)
    : inner_(EVP_MD_CTX_new(), EVP_MD_CTX_free), outer_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  constexpr size_t kBlock = 64;  // SHA-256 block size
  std::array<unsigned char, kBlock> k{};
  if (key.size() > kBlock) {
    unsigned int len = 0;
    Check(EVP_Digest(key.data(), key.size(), k.data(), &len, EVP_sha256(), nullptr));
  } else {
    std::copy(key.begin(), key.end(), k.begin());
  }
  std::array<unsigned char, kBlock> ipad{}, opad{};
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = static_cast<unsigned char>(k[i] ^ 0x36);
    opad[i] = static_cast<unsigned char>(k[i] ^ 0x5c);
  }
  Check(EVP_DigestInit_ex(inner_.get(), EVP_sha256(), nullptr));
  Check(EVP_DigestUpdate(inner_.get(), ipad.data(), kBlock));
  Check(EVP_DigestInit_ex(outer_.get(), EVP_sha256(), nullptr));
  Check(EVP_DigestUpdate(outer_.get(), opad.data(), kBlock));
}

std::string CardHasher::Hash(std::string_view normalized_card) const {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::array<unsigned char, EVP_MAX_MD_SIZE> inner_mac{}, mac{};
  unsigned int inner_len = 0, mac_len = 0;
  Check(EVP_MD_CTX_copy_ex(ctx.get(), inner_.get()));
  Check(EVP_DigestUpdate(ctx.get(), normalized_card.data(), normalized_card.size()));
  Check(EVP_DigestFinal_ex(ctx.get(), inner_mac.data(), &inner_len));
  Check(EVP_MD_CTX_copy_ex(ctx.get(), outer_.get()));
  Check(EVP_DigestUpdate(ctx.get(), inner_mac.data(), inner_len));
  Check(EVP_DigestFinal_ex(ctx.get(), mac.data(), &mac_len));
  return Hex(mac.data(), mac_len);
}

std::string CardHash(std::string_view key, std::string_view normalized_card) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  // A one-byte dummy keeps the key pointer non-null for an empty key.
  static const unsigned char kEmpty = 0;
  const void* key_ptr = key.empty() ? &kEmpty : static_cast<const void*>(key.data());
  const auto* data = reinterpret_cast<const unsigned char*>(normalized_card.data());
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()),
           normalized_card.empty() ? &kEmpty : data, normalized_card.size(), mac.data(),
           &mac_len) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return Hex(mac.data(), mac_len);
}

}  // namespace loyalty::core
