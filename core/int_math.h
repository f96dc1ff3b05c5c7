// Integer arithmetic for money and points: products are taken in 128 bits so
// that a rate times an amount cannot overflow before the division, and every
// division rounds toward negative infinity (the documented rounding rule).
// Header-only, pure, thread-safe.
#pragma once

#include <cstdint>

namespace loyalty::core {

// GCC and Clang's 128-bit integer; __extension__ keeps -Wpedantic quiet
// about a type ISO C++ does not have.
__extension__ typedef __int128 Int128;

// floor(n / d) for d > 0, also for negative n.
inline Int128 FloorDiv(Int128 n, Int128 d) {
  Int128 q = n / d;
  if ((n % d != 0) && ((n < 0) != (d < 0))) --q;
  return q;
}

// floor(a * b / d) with a 128-bit intermediate. The caller guarantees the
// result fits in 64 bits (inputs are bounded by validation).
inline int64_t MulDivFloor(int64_t a, int64_t b, int64_t d) {
  return static_cast<int64_t>(FloorDiv(static_cast<Int128>(a) * b, d));
}

// ceil(a * b / d) for non-negative a, b and d > 0.
inline int64_t MulDivCeil(int64_t a, int64_t b, int64_t d) {
  const Int128 p = static_cast<Int128>(a) * b;
  return static_cast<int64_t>((p + d - 1) / d);
}

}  // namespace loyalty::core
