/* numpy's element-wise rules in C, shared by the DVH kernels that must give numpy's
 * values bit for bit (rtqa.dvh._cpartial, rtqa.dvh._ctables):
 *   np_max / np_min: np.maximum / np.minimum (the second operand on ties; NaN propagates);
 *   np_clip: np.clip (x kept on ties; NaN propagates);
 *   exact_rint / exact_floor: np.rint / np.floor of r, exactly, without a libm call for
 *   |r| < 2^50 (the sign of a zero may differ, which a cast to an integer does not see). */
#ifndef RTQA_DVH_NPMATH_H
#define RTQA_DVH_NPMATH_H

#include <math.h>
#include <stdint.h>

static inline double np_max(double a, double b)
{
    return isnan(a) ? a : (isnan(b) ? b : (a > b ? a : b));
}

static inline double np_min(double a, double b)
{
    return isnan(a) ? a : (isnan(b) ? b : (a < b ? a : b));
}

static inline double np_clip(double x, double lo, double hi)
{
    if (isnan(x))
        return x;
    if (x < lo)
        x = lo;
    if (x > hi)
        x = hi;
    return x;
}

static inline double exact_rint(double r)
{
    const double big = 6755399441055744.0;  /* 1.5 * 2^52: adding rounds to an integer */
    if (!(fabs(r) < 1125899906842624.0))    /* (|r| >= 2^50 or NaN: libm) */
        return rint(r);
    return r >= 0 ? (r + big) - big : (r - big) + big;
}

static inline double exact_floor(double r)
{
    if (!(fabs(r) < 1125899906842624.0))
        return floor(r);
    double t = (double)(int64_t)r;  /* truncation toward zero, exact */
    return t > r ? t - 1.0 : t;
}

#endif
