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
    // Only a broken OpenSSL installation gets here.
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(mac_len * 2);
  for (unsigned int i = 0; i < mac_len; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0xf]);
  }
  return hex;
}

}  // namespace loyalty::core
