// Loyalty card numbers: normalisation, Luhn check and the keyed hash under
// which terminals store members (no plaintext card numbers at rest, design
// invariant 9). Pure functions, thread-safe.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace loyalty::core {

// Accepts 8 to 19 digits whose last digit is a valid Luhn check digit.
// Spaces and dashes from manual entry are removed first; anything else
// (letters, other punctuation, too short or long, bad check digit) is an
// Error with code "invalid_card". Returns the bare digits.
Result<std::string> NormalizeCardNumber(std::string_view raw);

// True when `digits` (only '0'-'9') ends in a correct Luhn check digit.
bool HasValidLuhn(std::string_view digits);

// The Luhn check digit ('0'-'9') to append to `payload` (only digits).
char LuhnCheckDigit(std::string_view payload);

// HMAC-SHA256 of the normalised card number under `key`, as 64 lowercase hex
// characters. The key is programme-wide so every terminal computes the same
// hash for the same card.
std::string CardHash(std::string_view key, std::string_view normalized_card);

// CardHash with the key prepared once, for the checkout hot path. Hash() is
// const and thread-safe; the result equals CardHash(key, card).
class CardHasher {
 public:
  explicit CardHasher(std::string_view key);
  std::string Hash(std::string_view normalized_card) const;

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> inner_;
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> outer_;
};

}  // namespace loyalty::core
