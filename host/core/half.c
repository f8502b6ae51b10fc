/* IEEE binary16 <-> binary32 on the host, in portable C11 (no _Float16, no F16C): the host side of
 * F16 storage, used by the reference, the host-memory entry point and the tests. Both directions
 * are exact: half -> float loses nothing, float -> half rounds to nearest, ties to even, like the
 * kernels' vstore_half_rte. And bfloat16, the top half of a float, the same way (cl/common.h.cl). */
#include "host/core/core.h"

#include <string.h>

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);   /* the defined way to reinterpret; compiles to a move */
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float clattn_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;

    if (exp == 0x1f)   /* inf, or NaN with its payload moved to the top of the float mantissa */
        return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return bits_float(sign);
        /* Subnormal half: every one is a normal float. Shift the leading 1 up to the implicit
           position, lowering the exponent once per shift. */
        int e = -14;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        mant &= 0x3ffu;
        return bits_float(sign | ((uint32_t)(e + 127) << 23) | (mant << 13));
    }
    return bits_float(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/* m >> shift rounded to nearest, ties to even. shift is in 1..31. */
static uint32_t shift_round_even(uint32_t m, int shift)
{
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return q;
}

uint16_t clattn_float_to_half(float f)
{
    uint32_t u = float_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t mant = u & 0x7fffffu;

    if (exp == 0xff) {
        if (mant == 0)
            return sign | 0x7c00u;
        /* Keep the top payload bits and force the quiet bit: a payload living only in the low 13
           bits would otherwise truncate to zero and turn the NaN into an infinity. */
        return (uint16_t)(sign | 0x7c00u | 0x200u | (mant >> 13));
    }

    int e = (int)exp - 127;
    if (e > 15)
        return sign | 0x7c00u;           /* >= 2^16: beyond the largest half even before rounding */
    if (e >= -14) {
        /* Normal half. A rounding carry out of the mantissa bumps the exponent, and out of the
           largest exponent gives 0x7c00, infinity, as IEEE requires; adding the parts does both. */
        uint32_t h = ((uint32_t)(e + 15) << 10) + shift_round_even(mant, 13);
        return (uint16_t)(sign | h);
    }
    if (e < -25 || exp == 0)
        return sign;                     /* below half the smallest subnormal (2^-25): rounds to 0 */
    /* Subnormal half, in units of 2^-24: the value is (1.mant) * 2^e = m * 2^(e-23), so the count
       of units is m * 2^(e+1). A carry into bit 10 yields the smallest normal, which is right. */
    uint32_t m = mant | 0x800000u;
    return (uint16_t)(sign | shift_round_even(m, -(e + 1)));
}

float clattn_bf16_to_float(uint16_t b)
{
    return bits_float((uint32_t)b << 16);
}

uint16_t clattn_float_to_bf16(float f)
{
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)   /* NaN: keep the top payload, force the quiet bit */
        return (uint16_t)((u >> 16) | 0x40u);
    /* to nearest, ties to even; a carry out of the mantissa bumps the exponent (to inf at the top) */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float clattn_storage_get(const void *t, clattn_dtype dtype, size_t i)
{
    switch (dtype) {
    case CLATTN_F16: return clattn_half_to_float(((const uint16_t *)t)[i]);
    case CLATTN_BF16: return clattn_bf16_to_float(((const uint16_t *)t)[i]);
    default: return ((const float *)t)[i];
    }
}

void clattn_storage_set(void *t, clattn_dtype dtype, size_t i, float x)
{
    switch (dtype) {
    case CLATTN_F16: ((uint16_t *)t)[i] = clattn_float_to_half(x); break;
    case CLATTN_BF16: ((uint16_t *)t)[i] = clattn_float_to_bf16(x); break;
    default: ((float *)t)[i] = x; break;
    }
}
