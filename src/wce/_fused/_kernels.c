/*
 * Compiled CPU kernels of wce's fused PyTorch losses.
 *
 * Loss and gradient of the softmax and sigmoid cross-entropy in one pass over the
 * logits, on raw float32 or float64 buffers handed over by wce._fused._native
 * (through ctypes, which releases the GIL). The maths is the generic path's
 * (wce._core), row by row:
 *
 *   softmax, class id y, max m, e_j = exp(x_j - m), others = sum_{j != y} e_j:
 *     -log p_y = log1p(others / e_y)          (full precision when p_y is near 1)
 *              = log(sum_j e_j) - (x_y - m)    (when e_y underflows)
 *     d/dx_j  = coef * (p_j - q_j),  p_y - 1 = -others / sum_j e_j
 *   sigmoid, target q, positive weight P:
 *     P q softplus(-z) + (1 - q) softplus(z),  d/dz = (P q + 1 - q) sigmoid(z) - P q
 *
 * Per-row and per-label scalars are taken in double; the float32 exp, log1p and
 * sigmoid run on 8-lane vectors (GCC vector extensions; on x86-64 an AVX2 + FMA
 * build of the loops runs where the CPU has both). A softmax row whose maximum is not finite (+inf,
 * an all -inf row, NaN) is left untouched and reported: the caller recomputes such
 * rows with the generic formulas. Rows are split over threads with pthreads.
 *
 * The module is also a (empty) Python extension module so that setuptools builds
 * and installs it like any other; wce loads it with ctypes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <stdint.h>
#include <string.h>

/* On x86-64 the float32 loops are compiled twice, for the baseline and for
 * AVX2 + FMA, and the second runs where the CPU has both. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WCE_X86 1
#define WCE_AVX2 __attribute__((target("avx2,fma")))
#else
#define WCE_X86 0
#endif

#define INLINE inline __attribute__((always_inline))

/* A gradient buffer fresh from the allocator is mapped page by page as the kernel
 * first writes it: one page fault, and one 4 KiB page zeroed, per 4 KiB. Before
 * the threads start, such a buffer (its first page not mapped yet, at least 4 MiB)
 * is advised for transparent huge pages (MADV_HUGEPAGE; Linux with THP in
 * "always" or "madvise" mode), so that the threads' first writes map it 2 MiB at a
 * time, in parallel. Where that advice is refused, each thread asks the kernel to
 * map its own part in one call instead (MADV_POPULATE_WRITE, Linux 5.14),
 * cheaper than taking the faults one by one. Elsewhere both are no-ops. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#define FRESH_MIN_BYTES ((int64_t)1 << 22)
#define PAGE ((uintptr_t)4096)

/* The whole pages of [p, p + bytes): [lo, hi), empty when hi <= lo. */
static void page_range(const void *p, int64_t bytes, uintptr_t *lo, uintptr_t *hi) {
    *lo = ((uintptr_t)p + PAGE - 1) & ~(PAGE - 1);
    *hi = ((uintptr_t)p + (uintptr_t)bytes) & ~(PAGE - 1);
}

/* whether [p, p + bytes) is a large buffer whose first full page is not mapped */
static int is_fresh(const void *p, int64_t bytes) {
#if defined(__linux__)
    if (bytes < FRESH_MIN_BYTES) return 0;
    uintptr_t lo, hi;
    page_range(p, bytes, &lo, &hi);
    unsigned char resident = 0;
    /* pages the allocator reuses are already there */
    return hi > lo && mincore((void *)lo, PAGE, &resident) == 0 && !(resident & 1);
#else
    (void)p;
    (void)bytes;
    return 0;
#endif
}

/* Whether fresh gradient buffers are advised for huge pages (wce_use_hugepages). */
static int hugepages = 1;

void wce_use_hugepages(int on) { hugepages = on != 0; }

/* The advice for a gradient buffer before the threads write it. Returns whether
 * the threads should still map their parts themselves (see populate). */
static int advise_grad(void *grad, const void *x, int64_t bytes) {
    if (!grad || grad == x || !is_fresh(grad, bytes)) return 0;
#if defined(__linux__)
    uintptr_t lo, hi;
    page_range(grad, bytes, &lo, &hi);
    return !(hugepages && madvise((void *)lo, hi - lo, MADV_HUGEPAGE) == 0);
#else
    return 0;
#endif
}

static void populate(void *p, int64_t bytes) {
#if defined(__linux__)
    if (!is_fresh(p, bytes)) return;
    uintptr_t lo, hi;
    page_range(p, bytes, &lo, &hi);
    (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* ------------------------------------------------------------------------- */
/* float32 vectors                                                            */
/* ------------------------------------------------------------------------- */
#define W 8
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

#define SPLAT(c) ((vf){c, c, c, c, c, c, c, c})
#define SPLATI(c) ((vi){c, c, c, c, c, c, c, c})

static INLINE vf sel(vi mask, vf a, vf b) {
    return (vf)((mask & (vi)a) | (~mask & (vi)b));
}

static INLINE vf load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static INLINE void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* the first n < W lanes from p, the others `fill` */
static INLINE vf load_part(const float *p, int64_t n, float fill) {
    float tmp[W];
    for (int k = 0; k < W; k++) tmp[k] = fill;
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return load(tmp);
}

static INLINE void store_part(float *p, vf v, int64_t n) {
    float tmp[W];
    store(tmp, v);
    memcpy(p, tmp, (size_t)n * sizeof(float));
}

/* The same for the tail of a row that lies before `end`, the end of the rows a
 * thread owns: one full load with the lanes past the tail replaced (the memory
 * there belongs to this thread's next row), or for the store, those lanes
 * written back as they were. The last row falls back to the copies above. */
static INLINE vf load_tail(const float *p, int64_t n, float fill, const float *end) {
    if (p + W <= end) {
        const vi iota = (vi){0, 1, 2, 3, 4, 5, 6, 7};
        return sel(iota < SPLATI((int32_t)n), load(p), SPLAT(fill));
    }
    return load_part(p, n, fill);
}

static INLINE void store_tail(float *p, vf v, int64_t n, const float *end) {
    if (p + W <= end) {
        const vi iota = (vi){0, 1, 2, 3, 4, 5, 6, 7};
        store(p, sel(iota < SPLATI((int32_t)n), v, load(p)));
        return;
    }
    store_part(p, v, n);
}

/* whether any lane of a comparison mask is set */
static INLINE int any_lane(vi m) {
    uint64_t part[W / 2];
    memcpy(part, &m, sizeof m);
    return (part[0] | part[1] | part[2] | part[3]) != 0;
}

static INLINE double hsum(vf v) {
    double s = 0.0;
    for (int k = 0; k < W; k++) s += (double)v[k];
    return s;
}

static INLINE float hmax(vf v) {
    float m = v[0];
    for (int k = 1; k < W; k++) m = v[k] > m ? v[k] : m;
    return m;
}

/* Four-lane double halves of a float vector, for sums that must not lose the
 * precision a float accumulator would (many like terms added to a larger one). */
typedef double vd __attribute__((vector_size(4 * sizeof(double))));
typedef float vf4 __attribute__((vector_size(4 * sizeof(float))));

static INLINE void add_to_double(vd *lo, vd *hi, vf v) {
    *lo += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), vd);
    *hi += __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), vd);
}

static INLINE vf to_float(vd lo, vd hi) {
    vf4 a = __builtin_convertvector(lo, vf4), b = __builtin_convertvector(hi, vf4);
    return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7);
}

/* exp(x) for x <= 0 (and NaN): a degree-6 polynomial on [-ln2/2, ln2/2] after
 * x = n ln2 + r. `exp_poly` returns exp(r) and n. */
static INLINE vf exp_poly(vf x, vi *n_out) {
    const vf magic = SPLAT(12582912.0f);
    vf t = x * SPLAT(1.44269504088896341f) + magic;
    vf n = t - magic;
    vf r = x - n * SPLAT(0.693359375f);
    r = r - n * SPLAT(-2.12194440e-4f);
    /* Estrin's scheme: the three pairs of coefficients in parallel */
    vf r2 = r * r;
    vf a0 = r * SPLAT(1.6666665459e-1f) + SPLAT(5.0000001201e-1f);
    vf a1 = r * SPLAT(8.3334519073e-3f) + SPLAT(4.1665795894e-2f);
    vf a2 = r * SPLAT(1.9875691500e-4f) + SPLAT(1.3981999507e-3f);
    vf p = (a2 * r2 + a1) * r2 + a0;
    *n_out = (vi)t - (vi)magic;
    return p * r2 + r + SPLAT(1.0f);
}

/* exp(x) for every x <= 0: results in float32's subnormal range come out right
 * (2^n taken as 2^(n + 64) 2^-64), 0 below the smallest subnormal. */
static INLINE vf vexp_nonpos(vf x) {
    const vf lo = SPLAT(-104.0f);
    vi under = x < lo;
    vi n;
    vf y = exp_poly(sel(under, lo, x), &n);
    y = y * (vf)((n + SPLATI(127 + 64)) << 23) * SPLAT(5.42101086e-20f);
    return sel(under, SPLAT(0.0f), y);
}

/* exp(x) for -87 <= x <= 0 only (results normal): no range handling. */
static INLINE vf vexp_normal(vf x) {
    vi n;
    vf y = exp_poly(x, &n);
    return y * (vf)((n + SPLATI(127)) << 23);
}

/* log(1 + x) + k ln 2 for x in [sqrt(1/2) - 1, sqrt(2) - 1]: a degree-9 polynomial,
 * ln 2 split in two parts so that k ln 2 adds no rounding. The polynomial is
 * evaluated in Estrin's scheme (pairs of coefficients, then powers x^2 and x^4):
 * a dependency chain of four multiply-adds instead of Horner's nine. */
static INLINE vf log_near_one(vf x, vf kf) {
    vf z = x * x, z2 = z * z;
    vf a0 = x * SPLAT(-2.4999993993e-1f) + SPLAT(3.3333331174e-1f);
    vf a1 = x * SPLAT(-1.6668057665e-1f) + SPLAT(2.0000714765e-1f);
    vf a2 = x * SPLAT(-1.2420140846e-1f) + SPLAT(1.4249322787e-1f);
    vf a3 = x * SPLAT(-1.1514610310e-1f) + SPLAT(1.1676998740e-1f);
    vf b0 = a1 * z + a0;
    vf b1 = a3 * z + a2;
    vf p = (z2 * SPLAT(7.0376836292e-2f) + b1) * z2 + b0;
    vf y = p * x * z + kf * SPLAT(-2.12194440e-4f) - SPLAT(0.5f) * z;
    return x + y + kf * SPLAT(0.693359375f);
}

/* log1p(u) for 0 <= u <= 1 (and NaN): x = 1 + u - 1 is taken as u itself below
 * sqrt(2) - 1, so small u keep their precision; above, (1 + u) / 2 - 1. */
static INLINE vf vlog1p_unit(vf u) {
    vi big = u > SPLAT(0.41421356237f);
    vf x = sel(big, (u + SPLAT(1.0f)) * SPLAT(0.5f) - SPLAT(1.0f), u);
    return log_near_one(x, sel(big, SPLAT(1.0f), SPLAT(0.0f)));
}

/* log(s) for s >= 0, subnormal s included (0 gives -inf, +inf gives +inf, NaN
 * stays NaN): s = f 2^k with f in [sqrt(1/2), sqrt(2)). */
static INLINE vf vlog(vf s) {
    /* subnormal inputs are scaled by 2^23 into the normal range first */
    vi sub = s < SPLAT(1.17549435e-38f);
    vi bits = (vi)sel(sub, s * SPLAT(8388608.0f), s);
    vi k = ((bits >> 23) & SPLATI(0xff)) - SPLATI(126);
    vf f = (vf)((bits & SPLATI(0x007fffff)) | SPLATI(0x3f000000)); /* [0.5, 1) */
    vi small = f < SPLAT(0.70710678118f);
    vf kf = __builtin_convertvector(k, vf) - sel(sub, SPLAT(23.0f), SPLAT(0.0f));
    kf = sel(small, kf - SPLAT(1.0f), kf);
    vf r = log_near_one(sel(small, f + f - SPLAT(1.0f), f - SPLAT(1.0f)), kf);
    r = sel(s == SPLAT(0.0f), SPLAT(-INFINITY), r);
    r = sel(s == SPLAT(INFINITY), s, r);
    return sel(s != s, s, r);
}

/* log1p(v) for v >= 0 */
static INLINE vf vlog1p(vf v) {
    vf s = v + SPLAT(1.0f);
    vf d = s - SPLAT(1.0f);
    vi tiny = d == SPLAT(0.0f);
    vf r = vlog(s) * (v / sel(tiny, SPLAT(1.0f), d));
    r = sel(tiny, v, r);
    return sel(v == SPLAT(INFINITY), v, r);
}

/* ------------------------------------------------------------------------- */
/* Softmax                                                                    */
/* ------------------------------------------------------------------------- */
typedef struct {
    /* inputs */
    int64_t rows, classes;
    const void *x;             /* (rows, classes), contiguous */
    void *grad;                /* (rows, classes) or NULL; may be x itself */
    void *out;                 /* (rows,) weighted loss of each row, or NULL */
    const int64_t *labels;     /* (rows,) class ids, or ignore_index */
    const void *label_weight;  /* (classes,) or NULL: weight of the true class */
    const void *pred_weight;   /* (classes,) or NULL: weight of the argmax */
    const void *cost;          /* (classes, classes) or NULL: cost[y, argmax] */
    const void *sample_weight; /* (rows,) or NULL */
    const void *upstream;      /* (rows,) or NULL: multiplies each row's gradient */
    int64_t *bad;              /* room for bad_capacity row ids */
    int64_t bad_capacity;
    int64_t ignore_index;
    int32_t has_ignore;
    int32_t den_kind;   /* 0: none, 1: count kept rows, 2: sum of weights */
    int32_t nthreads;
    int32_t pad_;
    double eps;         /* label smoothing */
    double gamma;       /* focal exponent; < 0 for the cross-entropy */
    double scale;       /* multiplies every gradient (1 / static denominator) */
    /* results */
    double num;         /* sum of weighted losses of the rows computed here */
    double den;         /* denominator contribution (den_kind) */
    int64_t nbad;       /* rows left to the caller */
} SoftmaxArgs;

typedef struct {
    SoftmaxArgs *a;
    int64_t r0, r1;
    double num, den;
    int dtype;    /* 0 float32, 1 float64 */
    int populate; /* map the rows' part of a fresh gradient buffer first */
} SoftmaxJob;

static void note_bad(SoftmaxArgs *a, int64_t i) {
    int64_t k = __atomic_fetch_add(&a->nbad, 1, __ATOMIC_RELAXED);
    if (k < a->bad_capacity) a->bad[k] = i;
}

/* The per-row scalars shared by both precisions: the weighted loss and the
 * gradient coefficients. Returns 0 when the row's gradient is zero. */
typedef struct {
    double wl;      /* weighted loss */
    double wden;    /* denominator contribution */
    double a;       /* g_j = a * e_j - b for j != y */
    double b;
    double gy;      /* g_y */
} RowOut;

static INLINE void row_scalars(const SoftmaxArgs *a, double w, int64_t c, double total,
                               double ey, double others, double dy, double sumx_m,
                               double up, RowOut *o) {
    /* dy = x_y - m; sumx_m = sum_j (x_j - m), only when eps != 0 */
    double nll = ey > 1e-30 ? log1p(others / ey) : log(total) - dy;
    double loss = nll, factor = 1.0;
    if (a->gamma >= 0.0) {
        double p = ey / total, one_m = others / total;
        double focus = pow(one_m, a->gamma);
        double ratio = one_m > 0.0 ? nll / one_m : 1.0;
        loss = focus * nll;
        factor = focus * (1.0 + a->gamma * p * ratio);
    } else if (a->eps != 0.0) {
        double smooth = (double)c * log(total) - sumx_m;
        loss = (1.0 - a->eps) * nll + a->eps / (double)c * smooth;
    }
    o->wl = w != 0.0 ? w * loss : 0.0;
    o->wden = a->den_kind == 2 ? w : 1.0;
    /* a row that weighs nothing gets a zero gradient, whatever its factor or
     * total (a masked label makes both infinite or NaN) */
    if (w == 0.0) {
        o->a = o->b = o->gy = 0.0;
        return;
    }
    double coef = w * a->scale * up * factor;
    o->a = coef / total;
    o->b = coef * a->eps / (double)c;
    o->gy = coef * (a->eps - a->eps / (double)c - others / total);
}

static INLINE double row_weight(const SoftmaxArgs *a, int64_t i, int64_t y,
                                int64_t pred, int dtype) {
    double w = 1.0;
#define WEIGHT_AT(ptr, k) \
    (dtype ? ((const double *)(ptr))[k] : (double)((const float *)(ptr))[k])
    if (a->label_weight) w *= WEIGHT_AT(a->label_weight, y);
    if (a->sample_weight) w *= WEIGHT_AT(a->sample_weight, i);
    if (a->pred_weight) w *= WEIGHT_AT(a->pred_weight, pred);
    if (a->cost) w *= WEIGHT_AT(a->cost, y * a->classes + pred);
    return w;
}

static INLINE double row_upstream(const SoftmaxArgs *a, int64_t i, int dtype) {
    return a->upstream ? WEIGHT_AT(a->upstream, i) : 1.0;
}

static INLINE void put_out(const SoftmaxArgs *a, int64_t i, double v, int dtype) {
    if (!a->out) return;
    if (dtype)
        ((double *)a->out)[i] = v;
    else
        ((float *)a->out)[i] = (float)v;
}

/* -- float32 rows ----------------------------------------------------------- */
#define FLUSH 16 /* blocks of W classes summed in float before going to double */

/* sum_{j != y} e_j of a row of exponentials, float partial sums flushed to double */
static INLINE double sum_except(const float *e, int64_t c, int64_t y) {
    const int64_t nb = c / W, tail = c - nb * W;
    const vi iota = (vi){0, 1, 2, 3, 4, 5, 6, 7}, vy = SPLATI((int32_t)y);
    double total = 0.0;
    for (int64_t b0 = 0; b0 < nb; b0 += FLUSH) {
        const int64_t b1 = b0 + FLUSH < nb ? b0 + FLUSH : nb;
        vf acc = SPLAT(0.0f);
        for (int64_t b = b0; b < b1; b++)
            acc += sel(iota + SPLATI((int32_t)(b * W)) == vy, SPLAT(0.0f), load(e + b * W));
        total += hsum(acc);
    }
    if (tail) {
        vf v = load_part(e + nb * W, tail, 0.0f);
        total += hsum(sel(iota + SPLATI((int32_t)(nb * W)) == vy, SPLAT(0.0f), v));
    }
    return total;
}

static INLINE void softmax_rows_f32(SoftmaxJob *job) {
    SoftmaxArgs *a = job->a;
    const int64_t c = a->classes;
    const int64_t nb = c / W, tail = c - nb * W;
    const int dynamic = a->pred_weight != NULL || a->cost != NULL;
    double num = 0.0, den = 0.0;
    /* the end of this thread's rows, for the full-width loads of row tails */
    const float *x_end = (const float *)a->x + job->r1 * c;
    const float *g_end = a->grad ? (const float *)a->grad + job->r1 * c : NULL;
    for (int64_t i = job->r0; i < job->r1; i++) {
        const float *x = (const float *)a->x + i * c;
        float *g = a->grad ? (float *)a->grad + i * c : NULL;
        int64_t y = a->labels[i];
        if (a->has_ignore && y == a->ignore_index) {
            put_out(a, i, 0.0, 0);
            if (g) memset(g, 0, (size_t)c * sizeof(float));
            continue;
        }
        /* pass 1: the maximum, and whether the row holds a NaN (a mask, not a
         * sum: a sum of finite but huge logits can overflow to inf - inf) */
        vf vm = SPLAT(-INFINITY), vlo = SPLAT(INFINITY);
        vi vnan = SPLATI(0);
        for (int64_t b = 0; b < nb; b++) {
            vf v = load(x + b * W);
            vm = sel(v > vm, v, vm);
            vlo = sel(v < vlo, v, vlo);
            vnan |= v != v;
        }
        if (tail) {
            const vi in_row = (vi){0, 1, 2, 3, 4, 5, 6, 7} < SPLATI((int32_t)tail);
            vf v0 = load_tail(x + nb * W, tail, 0.0f, x_end);
            vm = sel(in_row & (v0 > vm), v0, vm);
            vlo = sel(in_row & (v0 < vlo), v0, vlo);
            vnan |= v0 != v0;
        }
        float m = hmax(vm);
        /* every x_j - m within float32's normal exp range: the cheaper exp */
        const int normal = -hmax(-vlo) - m >= -87.0f;
        if (!isfinite(m) || any_lane(vnan)) {
            note_bad(a, i);
            continue;
        }
        int64_t pred = 0;
        if (dynamic) {
            while (x[pred] != m) pred++;
        }
        double w = row_weight(a, i, y, pred, 0);
        double dy = (double)x[y] - (double)m;
        /* pass 2: e_j = exp(x_j - m), stored in g; the others' sum leaves out e_y.
         * Float partial sums go to double every FLUSH blocks; the sum of x_j - m
         * (label smoothing) is taken alongside. */
        const vf vmm = SPLAT(m);
        const vi iota = (vi){0, 1, 2, 3, 4, 5, 6, 7}, vy = SPLATI((int32_t)y);
        const int smooth = a->eps != 0.0;
        /* the next row's logits come in from memory while this row's exp runs */
        const float *xn = i + 1 < job->r1 ? x + c : x;
        double others = 0.0, sumx_m = 0.0;
        for (int64_t b0 = 0; b0 < nb; b0 += FLUSH) {
            const int64_t b1 = b0 + FLUSH < nb ? b0 + FLUSH : nb;
            vf acc = SPLAT(0.0f), acc2 = SPLAT(0.0f), sx = SPLAT(0.0f);
            int64_t b = b0;
            for (; b + 1 < b1; b += 2) {
                __builtin_prefetch(xn + b * W, 0, 3);
                vf d0 = load(x + b * W) - vmm, d1 = load(x + (b + 1) * W) - vmm;
                vf e0 = normal ? vexp_normal(d0) : vexp_nonpos(d0);
                vf e1 = normal ? vexp_normal(d1) : vexp_nonpos(d1);
                if (g) {
                    store(g + b * W, e0);
                    store(g + (b + 1) * W, e1);
                }
                if (!g) { /* no copy of e to take e_y from: leave it out here */
                    e0 = sel(iota + SPLATI((int32_t)(b * W)) == vy, SPLAT(0.0f), e0);
                    e1 = sel(iota + SPLATI((int32_t)((b + 1) * W)) == vy, SPLAT(0.0f), e1);
                }
                acc += e0;
                acc2 += e1;
                if (smooth) sx += d0 + d1;
            }
            if (b < b1) {
                vf d0 = load(x + b * W) - vmm;
                vf e0 = normal ? vexp_normal(d0) : vexp_nonpos(d0);
                if (g) store(g + b * W, e0);
                if (!g) e0 = sel(iota + SPLATI((int32_t)(b * W)) == vy, SPLAT(0.0f), e0);
                acc += e0;
                if (smooth) sx += d0;
            }
            others += hsum(acc + acc2);
            sumx_m += hsum(sx);
        }
        if (tail) {
            vf d0 = load_tail(x + nb * W, tail, -INFINITY, x_end) - vmm;
            vf e = vexp_nonpos(d0);
            if (g) store_tail(g + nb * W, e, tail, g_end);
            if (!g) e = sel(iota + SPLATI((int32_t)(nb * W)) == vy, SPLAT(0.0f), e);
            others += hsum(e);
            if (smooth) sumx_m += hsum(sel(iota < SPLATI((int32_t)tail), d0, SPLAT(0.0f)));
        }
        if (g) {
            /* others held every e_j: take e_y out, exactly by a second sum over the
             * (cached) exponentials when e_y is at least half of the total */
            double eyf = (double)g[y];
            others = eyf * 2.0 >= others ? sum_except(g, c, y) : others - eyf;
        }
        double ey = exp(dy);
        double total = ey + others;
        RowOut o;
        row_scalars(a, w, c, total, ey, others, dy, sumx_m, row_upstream(a, i, 0), &o);
        num += o.wl;
        den += o.wden;
        put_out(a, i, o.wl, 0);
        if (!g) continue;
        /* pass 3: the gradient, over the exponentials in g */
        const vf va = SPLAT((float)o.a), vb = SPLAT((float)o.b);
        for (int64_t k = 0; k < nb; k++) store(g + k * W, load(g + k * W) * va - vb);
        if (tail)
            store_tail(g + nb * W, load_tail(g + nb * W, tail, 0.0f, g_end) * va - vb, tail,
                       g_end);
        g[y] = (float)o.gy;
    }
    job->num = num;
    job->den = den;
}

/* -- float32, few classes: 8 rows at a time, one row per vector lane ---------- */
#define SMALL_CLASSES 96

static INLINE void softmax_small_f32(SoftmaxJob *job) {
    SoftmaxArgs *a = job->a;
    const int64_t c = a->classes;
    const int dynamic = a->pred_weight != NULL || a->cost != NULL;
    const float eps = (float)a->eps, gamma = (float)a->gamma;
    const float *lw = (const float *)a->label_weight, *pw = (const float *)a->pred_weight;
    const float *cost = (const float *)a->cost, *sw = (const float *)a->sample_weight;
    const float *upw = (const float *)a->upstream;
    const vf vinf = SPLAT(INFINITY);
    double num = 0.0, den = 0.0;
    vf X[SMALL_CLASSES];
    for (int64_t r = job->r0; r < job->r1; r += W) {
        const int64_t nr = job->r1 - r < W ? job->r1 - r : W;
        /* rows r..r+nr as columns: X[j][k] = x[r + k, j]; missing rows are 0 */
        const float *x = (const float *)a->x + r * c;
        if (nr == W) {
            /* built from scalar loads: no stack round trip */
            for (int64_t j = 0; j < c; j++)
                X[j] = (vf){x[j],         x[c + j],     x[2 * c + j], x[3 * c + j],
                            x[4 * c + j], x[5 * c + j], x[6 * c + j], x[7 * c + j]};
        } else {
            for (int64_t j = 0; j < c; j++) {
                float col[W] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (int64_t k = 0; k < nr; k++) col[k] = x[k * c + j];
                X[j] = load(col);
            }
        }
        int32_t yl[W] = {0, 0, 0, 0, 0, 0, 0, 0}, keep_row[W] = {0, 0, 0, 0, 0, 0, 0, 0};
        float wv[W] = {0, 0, 0, 0, 0, 0, 0, 0}, upv[W] = {1, 1, 1, 1, 1, 1, 1, 1};
        for (int64_t k = 0; k < nr; k++) {
            int64_t y = a->labels[r + k];
            if (a->has_ignore && y == a->ignore_index) continue;
            keep_row[k] = -1;
            yl[k] = (int32_t)y;
            float w = 1.0f;
            if (lw) w *= lw[y];
            if (sw) w *= sw[r + k];
            wv[k] = w;
            if (upw) upv[k] = upw[r + k];
        }
        vi valid, vy;
        memcpy(&valid, keep_row, sizeof valid);
        memcpy(&vy, yl, sizeof vy);
        /* max, argmax (first), NaN */
        vf m = SPLAT(-INFINITY), lo = SPLAT(INFINITY);
        vi pred = SPLATI(0), nan = SPLATI(0);
        for (int64_t j = 0; j < c; j++) {
            vi gt = X[j] > m;
            m = sel(gt, X[j], m);
            lo = sel(X[j] < lo, X[j], lo);
            pred = (gt & SPLATI((int32_t)j)) | (~gt & pred);
            nan |= X[j] != X[j];
        }
        /* every x - m of the eight rows within float32's normal exp range */
        vi in_range = lo - m >= SPLAT(-87.0f);
        int normal = 1;
        for (int k = 0; k < W; k++) normal &= in_range[k] != 0;
        vi bad = valid & (nan | ~(m < vinf) | ~(m > -vinf));
        for (int64_t k = 0; k < nr; k++)
            if (bad[k]) note_bad(a, r + k);
        vi ok = valid & ~bad;
        if (dynamic) {
            for (int64_t k = 0; k < nr; k++) {
                if (!ok[k]) continue;
                if (pw) wv[k] *= pw[pred[k]];
                if (cost) wv[k] *= cost[yl[k] * c + pred[k]];
            }
        }
        vf w = sel(ok, load(wv), SPLAT(0.0f));
        m = sel(ok, m, SPLAT(0.0f));
        /* exponentials; e_y and the others' sum kept apart */
        /* the sums in double: up to SMALL_CLASSES like terms would lose up to
         * that many float roundings */
        const vd zero = {0.0, 0.0, 0.0, 0.0};
        vd o_lo = zero, o_hi = zero, s_lo = zero, s_hi = zero;
        vf ey = SPLAT(0.0f), dy = SPLAT(0.0f);
        const int smooth = eps != 0.0f;
        for (int64_t j = 0; j < c; j++) {
            vf xm = X[j] - m;
            if (smooth) add_to_double(&s_lo, &s_hi, xm);
            vf e = normal ? vexp_normal(xm) : vexp_nonpos(xm);
            vi isy = vy == SPLATI((int32_t)j);
            ey = sel(isy, e, ey);
            dy = sel(isy, xm, dy);
            add_to_double(&o_lo, &o_hi, sel(isy, SPLAT(0.0f), e));
            X[j] = e;
        }
        vf others = to_float(o_lo, o_hi), sumx_m = to_float(s_lo, s_hi);
        /* rows not computed here (ignored, left to the caller) get a harmless 1 */
        vf total = sel(ok, ey + others, SPLAT(1.0f));
        vf nll = sel(ey > SPLAT(1e-30f), vlog1p(others / sel(ey > SPLAT(0.0f), ey, SPLAT(1.0f))),
                     vlog(total) - dy);
        vf loss = nll, factor = SPLAT(1.0f);
        if (gamma >= 0.0f) {
            vf p = ey / total, one_m = others / total;
            vf focus = gamma == 0.0f ? SPLAT(1.0f) : vexp_nonpos(SPLAT(gamma) * vlog(one_m));
            vf ratio = sel(one_m > SPLAT(0.0f), nll / sel(one_m > SPLAT(0.0f), one_m, SPLAT(1.0f)),
                           SPLAT(1.0f));
            loss = focus * nll;
            factor = focus * (SPLAT(1.0f) + SPLAT(gamma) * p * ratio);
        } else if (eps != 0.0f) {
            vf smooth = SPLAT((float)c) * vlog(total) - sumx_m;
            loss = SPLAT(1.0f - eps) * nll + SPLAT(eps / (float)c) * smooth;
        }
        vf nz = sel(w != SPLAT(0.0f), SPLAT(1.0f), SPLAT(0.0f));
        vf wl = sel(w != SPLAT(0.0f), w * loss, SPLAT(0.0f));
        num += hsum(wl);
        den += hsum(a->den_kind == 2 ? w : sel(ok, SPLAT(1.0f), SPLAT(0.0f)));
        if (a->out) {
            float *o = (float *)a->out + r;
            for (int64_t k = 0; k < nr; k++)
                if (!bad[k]) o[k] = wl[k];
        }
        if (!a->grad) continue;
        vf coef = nz * w * SPLAT((float)a->scale) * load(upv) * factor;
        coef = sel(w != SPLAT(0.0f), coef, SPLAT(0.0f));
        vf va = coef / total, vb = coef * SPLAT(eps / (float)c);
        vf gy = coef * (SPLAT(eps - eps / (float)c) - others / total);
        float *g = (float *)a->grad + r * c;
        for (int64_t j = 0; j < c; j++) {
            vf gj = sel(ok, sel(vy == SPLATI((int32_t)j), gy, X[j] * va - vb), SPLAT(0.0f));
            for (int64_t k = 0; k < nr; k++)
                if (!bad[k]) g[k * c + j] = gj[k];
        }
    }
    job->num = num;
    job->den = den;
}

/* -- float64 rows (scalar; libm's exp) -------------------------------------- */
static void softmax_rows_f64(void *p) {
    SoftmaxJob *job = (SoftmaxJob *)p;
    SoftmaxArgs *a = job->a;
    const int64_t c = a->classes;
    const int dynamic = a->pred_weight != NULL || a->cost != NULL;
    double num = 0.0, den = 0.0;
    for (int64_t i = job->r0; i < job->r1; i++) {
        const double *x = (const double *)a->x + i * c;
        double *g = a->grad ? (double *)a->grad + i * c : NULL;
        int64_t y = a->labels[i];
        if (a->has_ignore && y == a->ignore_index) {
            put_out(a, i, 0.0, 1);
            if (g) memset(g, 0, (size_t)c * sizeof(double));
            continue;
        }
        double m = -INFINITY;
        int64_t pred = 0;
        int any_nan = 0;
        for (int64_t j = 0; j < c; j++) {
            if (x[j] > m) {
                m = x[j];
                pred = j;
            }
            any_nan |= x[j] != x[j];
        }
        if (!isfinite(m) || any_nan) {
            note_bad(a, i);
            continue;
        }
        double w = row_weight(a, i, y, dynamic ? pred : 0, 1);
        double dy = x[y] - m;
        double sumx_m = 0.0, others = 0.0;
        for (int64_t j = 0; j < c; j++) {
            sumx_m += x[j] - m;
            double e = exp(x[j] - m);
            if (g) g[j] = e;
            if (j != y) others += e;
        }
        double ey = exp(dy);
        double total = ey + others;
        RowOut o;
        row_scalars(a, w, c, total, ey, others, dy, sumx_m, row_upstream(a, i, 1), &o);
        num += o.wl;
        den += o.wden;
        put_out(a, i, o.wl, 1);
        if (!g) continue;
        for (int64_t j = 0; j < c; j++) g[j] = g[j] * o.a - o.b;
        g[y] = o.gy;
    }
    job->num = num;
    job->den = den;
}

static void softmax_rows_f32_base(void *p) {
    SoftmaxJob *job = (SoftmaxJob *)p;
    if (job->a->classes <= SMALL_CLASSES)
        softmax_small_f32(job);
    else
        softmax_rows_f32(job);
}
#if WCE_X86
WCE_AVX2 static void softmax_rows_f32_avx2(void *p) {
    SoftmaxJob *job = (SoftmaxJob *)p;
    if (job->a->classes <= SMALL_CLASSES)
        softmax_small_f32(job);
    else
        softmax_rows_f32(job);
}
#endif

static int has_avx2_fma(void) {
#if WCE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

typedef void (*rows_fn)(void *job);

/* One thread's part: map a fresh gradient buffer, then the rows in the precision
 * and the build (AVX2 + FMA or baseline) that fit. */
static void run_rows(void *job, void *grad, int populate_part, int64_t r0, int64_t r1,
                     int64_t width, int dtype, rows_fn f64, rows_fn base, rows_fn avx2) {
    if (populate_part) {
        int64_t es = dtype ? 8 : 4;
        populate((char *)grad + r0 * width * es, (r1 - r0) * width * es);
    }
    if (dtype)
        f64(job);
    else if (avx2 && has_avx2_fma())
        avx2(job);
    else
        base(job);
}

#if WCE_X86
#define AVX2_OR_NULL(fn) (fn)
#else
#define AVX2_OR_NULL(fn) NULL
#endif

static void *softmax_job(void *p) {
    SoftmaxJob *job = (SoftmaxJob *)p;
    SoftmaxArgs *a = job->a;
    run_rows(job, a->grad, job->populate, job->r0, job->r1, a->classes, job->dtype,
             softmax_rows_f64, softmax_rows_f32_base, AVX2_OR_NULL(softmax_rows_f32_avx2));
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Sigmoid                                                                    */
/* ------------------------------------------------------------------------- */
typedef struct {
    int64_t rows, cols;        /* the logits as (rows, cols) */
    const void *z;             /* (rows, cols), contiguous */
    const void *t;             /* (rows, cols) targets in [0, 1] or ignore_index */
    void *grad;                /* (rows, cols) or NULL; may be z itself */
    void *out;                 /* (rows, cols) weighted losses, or NULL */
    const void *pos_weight;    /* (cols,) or NULL */
    const void *col_weight;    /* (cols,) or NULL */
    const void *row_weight;    /* (rows,) or NULL */
    const void *elem_weight;   /* (rows, cols) or NULL */
    double ignore_value;
    int32_t has_ignore;
    int32_t den_kind;          /* 0: none, 1: count kept labels, 2: sum of weights */
    int32_t nthreads;
    int32_t focal;             /* 1: the focal loss (gamma, alpha) */
    double eps;
    double scale;
    double gamma;              /* focal exponent */
    double alpha;              /* focal weight of positives; < 0 for none */
    double num, den;
} SigmoidArgs;

typedef struct {
    SigmoidArgs *a;
    int64_t r0, r1;
    double num, den;
    int dtype;
    int populate;
} SigmoidJob;

#define AT(ptr, k) (((const float *)(ptr))[k])

/* (1 + e) times the gradient (P q + 1 - q) sigmoid(z) - P q, written as one
 * fraction over 1 + e (e = exp(-|z|)): no cancellation of sigmoid(z) against 1
 * in the tails. */
static INLINE vf sigmoid_grad_num(vi pos, vf e, vf pq, vf omq) {
    return omq * sel(pos, SPLAT(1.0f), e) - pq * sel(pos, e, SPLAT(1.0f));
}

/* The fast form of a block of W labels where every |z| <= 87: exp(-|z|) is a
 * normal float and every term is finite, so the loss and gradient need no range
 * handling and no guards against 0 * inf. Returns the weighted losses; the
 * gradient (times `scale`) goes to *grad_out. */
static INLINE vf sigmoid_fast(vf vz, vf pq, vf omq, vf vw, float scale, vf *grad_out) {
    vf az = (vf)((vi)vz & SPLATI(0x7fffffff));
    vi pos = vz >= SPLAT(0.0f);
    vf zp = (vf)((vi)vz & (vz > SPLAT(0.0f))); /* max(z, 0) */
    vf zn = az - zp;                             /* max(-z, 0) */
    vf e = vexp_normal(-az);
    vf l1p = vlog1p_unit(e);
    *grad_out = sigmoid_grad_num(pos, e, pq, omq) / (SPLAT(1.0f) + e) * (vw * SPLAT(scale));
    /* P q softplus(-z) + (1 - q) softplus(z) */
    return vw * (pq * (zn + l1p) + omq * (zp + l1p));
}

/* The general form's shared part: e = exp(-|z|) (subnormal results exact), whether
 * z >= 0, and P q softplus(-z) + (1 - q) softplus(z) with a term whose coefficient
 * is 0 left out, so saturated and infinite logits give 0, not NaN. */
static INLINE vf sigmoid_bce_general(vf vz, vf pq, vf omq, vf *e_out, vi *pos_out) {
    vf az = (vf)((vi)vz & SPLATI(0x7fffffff));
    vf zp = sel(vz > SPLAT(0.0f), vz, SPLAT(0.0f));
    vf zn = sel(vz < SPLAT(0.0f), -vz, SPLAT(0.0f));
    vf e = vexp_nonpos(-az);
    vf l1p = vlog1p_unit(e);
    *e_out = e;
    *pos_out = vz >= SPLAT(0.0f);
    return sel(pq != SPLAT(0.0f), pq * (zn + l1p), SPLAT(0.0f)) +
           sel(omq != SPLAT(0.0f), omq * (zp + l1p), SPLAT(0.0f));
}

/* The general form (see sigmoid_bce_general); labels that weigh nothing get a zero
 * gradient, a NaN logit included. */
static INLINE vf sigmoid_general(vf vz, vf pq, vf omq, vf vw, float scale, vf *grad_out) {
    vf e;
    vi pos;
    vf loss = sigmoid_bce_general(vz, pq, omq, &e, &pos);
    vf num = sigmoid_grad_num(pos, e, pq, omq);
    vi live = vw != SPLAT(0.0f);
    *grad_out = sel(live, num / (SPLAT(1.0f) + e) * (vw * SPLAT(scale)), SPLAT(0.0f));
    return sel(live, vw * loss, SPLAT(0.0f));
}

/* whether every lane of z has |z| <= 87 (false for a NaN) */
static INLINE int moderate(vf vz) {
    vf az = (vf)((vi)vz & SPLATI(0x7fffffff));
    return !any_lane(~(az <= SPLAT(87.0f)));
}

/* The inputs of one block of n <= W labels of row i, from column j: logits,
 * P q, 1 - q, weights (0 past the end and where the label is ignored), and which
 * lanes count for the "mean" denominator. */
typedef struct {
    vf z, pq, omq, w, counted;
} SigmoidIn;

static INLINE SigmoidIn sigmoid_load(const SigmoidArgs *a, const float *z, const float *t,
                                     const float *ew, float rw, int64_t j, int64_t n,
                                     float eps, float half_eps, float ign) {
    SigmoidIn in;
    vf vt, vp = SPLAT(1.0f), vw = SPLAT(rw), one = SPLAT(1.0f);
    if (n == W) {
        in.z = load(z + j);
        vt = load(t + j);
        if (a->pos_weight) vp = load((const float *)a->pos_weight + j);
        if (a->col_weight) vw *= load((const float *)a->col_weight + j);
        if (ew) vw *= load(ew + j);
    } else {
        float ones[W];
        for (int q = 0; q < W; q++) ones[q] = 1.0f;
        in.z = load_part(z + j, n, 0.0f);
        vt = load_part(t + j, n, 0.0f);
        if (a->pos_weight) vp = load_part((const float *)a->pos_weight + j, n, 1.0f);
        if (a->col_weight) vw *= load_part((const float *)a->col_weight + j, n, 0.0f);
        if (ew) vw *= load_part(ew + j, n, 0.0f);
        /* lanes past the end weigh nothing and do not count */
        one = load_part(ones, n, 0.0f);
        vw *= one;
    }
    if (a->has_ignore) {
        vi valid = vt != SPLAT(ign);
        vt = sel(valid, vt, SPLAT(0.0f));
        vw = sel(valid, vw, SPLAT(0.0f));
        one = sel(valid, one, SPLAT(0.0f));
    }
    vf q = vt * SPLAT(1.0f - eps) + SPLAT(half_eps);
    in.pq = vp * q;
    in.omq = SPLAT(1.0f) - q;
    in.w = vw;
    in.counted = one;
    return in;
}

static INLINE void put_block(float *p, int64_t j, int64_t n, vf v) {
    if (!p) return;
    if (n == W)
        store(p + j, v);
    else
        store_part(p + j, v, n);
}

/* One block of the sigmoid focal loss, A F bce with F = (1 - p_t)^gamma,
 * 1 - p_t = u = q (1 - p) + (1 - q) p and A = alpha q + (1 - alpha) (1 - q) (or 1).
 * With p = a / (1 + e), 1 - p = b / (1 + e), (a, b) = (1, e) for z >= 0 and (e, 1)
 * below, every factor is a ratio of sums of non-negative terms (no cancellation):
 *   u = (q b + (1 - q) a) / (1 + e),  p - q = ((1 - q) a - q b) / (1 + e),
 *   d/dz = A [F (p - q) + gamma F bce (1 - 2q) r],  r = p (1 - p) / u
 *        = e / ((1 + e) (q b + (1 - q) a)),
 * the second term 0 where F bce or r is 0 (a saturated logit, u = 0). */
static INLINE vf sigmoid_focal_block(vf vz, vf q, vf omq, vf vw, float gamma, float alpha,
                                     float scale, vf *grad_out) {
    vf e;
    vi pos;
    vf bce = sigmoid_bce_general(vz, q, omq, &e, &pos);
    vf va = sel(pos, SPLAT(1.0f), e), vb = sel(pos, e, SPLAT(1.0f));
    vf inv = SPLAT(1.0f) / (SPLAT(1.0f) + e);
    vf su = q * vb + omq * va; /* u (1 + e) */
    vf f = SPLAT(1.0f), t2 = SPLAT(0.0f);
    if (gamma != 0.0f) {
        f = vexp_nonpos(SPLAT(gamma) * vlog(su * inv));
        vf r = e * inv / sel(su != SPLAT(0.0f), su, SPLAT(1.0f));
        vi live2 = (f * bce != SPLAT(0.0f)) & (r != SPLAT(0.0f)) & (su != SPLAT(0.0f));
        t2 = sel(live2, SPLAT(gamma) * f * bce * (omq - q) * r, SPLAT(0.0f));
    }
    vf A = alpha < 0.0f ? SPLAT(1.0f) : SPLAT(alpha) * q + SPLAT(1.0f - alpha) * omq;
    vf loss = sel(f != SPLAT(0.0f), A * f * bce, SPLAT(0.0f));
    vf g = A * (f * sigmoid_grad_num(pos, e, q, omq) * inv + t2);
    vi live = vw != SPLAT(0.0f);
    *grad_out = sel(live, g * (vw * SPLAT(scale)), SPLAT(0.0f));
    return sel(live, vw * loss, SPLAT(0.0f));
}

static INLINE void sigmoid_rows_f32(SigmoidJob *job) {
    SigmoidArgs *a = job->a;
    /* the focal loss (no positive weight: P q is q) one block at a time */
    const int focal = a->focal;
    const float gamma = (float)a->gamma, alpha = (float)a->alpha;
    const int64_t k = a->cols, nb = k / W, tail = k - nb * W;
    const float eps = (float)a->eps, half_eps = (float)(a->eps / 2.0);
    const float ign = (float)a->ignore_value, scale = (float)a->scale;
    vf vnum = SPLAT(0.0f), vden = SPLAT(0.0f);
    double num = 0.0, den = 0.0;
    int64_t pending = 0; /* blocks summed in the float accumulators */
#define SIGMOID_ACCOUNT(in, wl)                                                 \
    do {                                                                       \
        vnum += (wl);                                                          \
        if (a->den_kind == 2)                                                  \
            vden += (in).w;                                                    \
        else if (a->den_kind == 1)                                             \
            vden += (in).counted;                                              \
        if (++pending >= FLUSH) { /* float partial sums to double */           \
            num += hsum(vnum);                                                 \
            den += hsum(vden);                                                 \
            vnum = vden = SPLAT(0.0f);                                         \
            pending = 0;                                                       \
        }                                                                      \
    } while (0)
    for (int64_t i = job->r0; i < job->r1; i++) {
        const float *z = (const float *)a->z + i * k;
        const float *t = (const float *)a->t + i * k;
        float *g = a->grad ? (float *)a->grad + i * k : NULL;
        float *o = a->out ? (float *)a->out + i * k : NULL;
        const float rw = a->row_weight ? AT(a->row_weight, i) : 1.0f;
        const float *ew = a->elem_weight ? (const float *)a->elem_weight + i * k : NULL;
        int64_t b = 0;
        /* two blocks at a time: two independent exp -> log1p -> divide chains
         * for the out-of-order core to overlap */
        for (; !focal && b + 2 <= nb; b += 2) {
            const int64_t j = b * W;
            SigmoidIn u = sigmoid_load(a, z, t, ew, rw, j, W, eps, half_eps, ign);
            SigmoidIn v = sigmoid_load(a, z, t, ew, rw, j + W, W, eps, half_eps, ign);
            vf gu, gv, lu, lv;
            if (moderate(u.z) & moderate(v.z)) {
                lu = sigmoid_fast(u.z, u.pq, u.omq, u.w, scale, &gu);
                lv = sigmoid_fast(v.z, v.pq, v.omq, v.w, scale, &gv);
            } else {
                lu = sigmoid_general(u.z, u.pq, u.omq, u.w, scale, &gu);
                lv = sigmoid_general(v.z, v.pq, v.omq, v.w, scale, &gv);
            }
            SIGMOID_ACCOUNT(u, lu);
            SIGMOID_ACCOUNT(v, lv);
            put_block(o, j, W, lu);
            put_block(o, j + W, W, lv);
            put_block(g, j, W, gu);
            put_block(g, j + W, W, gv);
        }
        for (; b <= nb; b++) {
            const int64_t j = b * W, n = b < nb ? W : tail;
            if (n == 0) break;
            SigmoidIn u = sigmoid_load(a, z, t, ew, rw, j, n, eps, half_eps, ign);
            vf gu, lu;
            if (focal)
                lu = sigmoid_focal_block(u.z, u.pq, u.omq, u.w, gamma, alpha, scale, &gu);
            else if (moderate(u.z))
                lu = sigmoid_fast(u.z, u.pq, u.omq, u.w, scale, &gu);
            else
                lu = sigmoid_general(u.z, u.pq, u.omq, u.w, scale, &gu);
            SIGMOID_ACCOUNT(u, lu);
            put_block(o, j, n, lu);
            put_block(g, j, n, gu);
        }
    }
#undef SIGMOID_ACCOUNT
    num += hsum(vnum);
    den += hsum(vden);
    job->num = num;
    job->den = den;
}

static void sigmoid_rows_f64(void *p) {
    SigmoidJob *job = (SigmoidJob *)p;
    SigmoidArgs *a = job->a;
    const int64_t k = a->cols;
    double num = 0.0, den = 0.0;
#define DAT(ptr, idx) (((const double *)(ptr))[idx])
    for (int64_t i = job->r0; i < job->r1; i++) {
        const double *z = (const double *)a->z + i * k;
        const double *t = (const double *)a->t + i * k;
        double *g = a->grad ? (double *)a->grad + i * k : NULL;
        double *o = a->out ? (double *)a->out + i * k : NULL;
        const double rw = a->row_weight ? DAT(a->row_weight, i) : 1.0;
        for (int64_t j = 0; j < k; j++) {
            double zz = z[j], tt = t[j], w = rw;
            if (a->col_weight) w *= DAT(a->col_weight, j);
            if (a->elem_weight) w *= DAT(a->elem_weight, i * k + j);
            int valid = 1;
            if (a->has_ignore && tt == a->ignore_value) {
                valid = 0;
                tt = 0.0;
                w = 0.0;
            }
            double p = a->pos_weight ? DAT(a->pos_weight, j) : 1.0;
            double q = tt * (1.0 - a->eps) + a->eps / 2.0;
            double pq = p * q, omq = 1.0 - q;
            double e = exp(-fabs(zz)), l1p = log1p(e);
            double sp_pos = (zz > 0.0 ? zz : 0.0) + l1p, sp_neg = (zz < 0.0 ? -zz : 0.0) + l1p;
            double loss = (pq != 0.0 ? pq * sp_neg : 0.0) + (omq != 0.0 ? omq * sp_pos : 0.0);
            double gnum = zz >= 0.0 ? omq - pq * e : omq * e - pq; /* (grad) (1 + e) */
            if (a->focal) { /* the float32 block's formulas (sigmoid_focal_block) */
                double va = zz >= 0.0 ? 1.0 : e, vb = zz >= 0.0 ? e : 1.0;
                double su = q * vb + omq * va, f = 1.0, t2 = 0.0;
                if (a->gamma != 0.0) {
                    f = exp(a->gamma * log(su / (1.0 + e)));
                    double r = su != 0.0 ? e / ((1.0 + e) * su) : 0.0;
                    if (f * loss != 0.0 && r != 0.0) t2 = a->gamma * f * loss * (omq - q) * r;
                }
                double A = a->alpha < 0.0 ? 1.0 : a->alpha * q + (1.0 - a->alpha) * omq;
                gnum = A * (f * gnum + t2 * (1.0 + e));
                loss = f != 0.0 ? A * f * loss : 0.0;
            }
            double wl = w != 0.0 ? w * loss : 0.0;
            num += wl;
            if (a->den_kind == 2)
                den += w;
            else if (a->den_kind == 1)
                den += valid;
            if (o) o[j] = wl;
            if (g) g[j] = w != 0.0 ? gnum / (1.0 + e) * w * a->scale : 0.0;
        }
    }
    job->num = num;
    job->den = den;
}

static void sigmoid_rows_f32_base(void *p) { sigmoid_rows_f32((SigmoidJob *)p); }
#if WCE_X86
WCE_AVX2 static void sigmoid_rows_f32_avx2(void *p) { sigmoid_rows_f32((SigmoidJob *)p); }
#endif

static void *sigmoid_job(void *p) {
    SigmoidJob *job = (SigmoidJob *)p;
    SigmoidArgs *a = job->a;
    run_rows(job, a->grad, job->populate, job->r0, job->r1, a->cols, job->dtype,
             sigmoid_rows_f64, sigmoid_rows_f32_base, AVX2_OR_NULL(sigmoid_rows_f32_avx2));
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Entry points: split the rows over threads                                  */
/* ------------------------------------------------------------------------- */
#define MAX_THREADS 256

/* Threads: by default a pthread per part. When the caller hands over the OpenMP
 * runtime PyTorch already runs (its GOMP_parallel entry point, the libgomp ABI
 * that LLVM's and Intel's runtimes also provide), the parts run on PyTorch's own
 * team instead: no threads to start, and no idle PyTorch workers spinning on the
 * cores this kernel needs. */
typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_int_fn)(void);
static gomp_parallel_fn gomp_parallel = NULL;
static omp_int_fn omp_thread_num = NULL, omp_num_threads = NULL;

void wce_use_openmp(void *parallel, void *thread_num, void *num_threads) {
    gomp_parallel = (gomp_parallel_fn)parallel;
    omp_thread_num = (omp_int_fn)thread_num;
    omp_num_threads = (omp_int_fn)num_threads;
}

int wce_uses_openmp(void) { return gomp_parallel != NULL; }

typedef struct {
    char *jobs;
    size_t size;
    void *(*fn)(void *);
    int64_t n;
} Team;

static void team_body(void *p) {
    Team *t = (Team *)p;
    int64_t q = omp_thread_num(), step = omp_num_threads();
    if (step < 1) step = 1;
    for (; q < t->n; q += step) t->fn(t->jobs + (size_t)q * t->size);
}

static void run_parts(void *jobs, size_t size, void *(*fn)(void *), int64_t nt) {
    if (nt > 1 && gomp_parallel && omp_thread_num && omp_num_threads) {
        Team t = {(char *)jobs, size, fn, nt};
        gomp_parallel(team_body, &t, (unsigned)nt, 0);
        return;
    }
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS];
    for (int64_t q = 1; q < nt; q++)
        started[q] = pthread_create(&tids[q], NULL, fn, (char *)jobs + (size_t)q * size) == 0;
    fn(jobs);
    for (int64_t q = 1; q < nt; q++) {
        if (started[q])
            pthread_join(tids[q], NULL);
        else
            fn((char *)jobs + (size_t)q * size);
    }
}

/* Rows per thread: at least enough work to pay for starting a thread. */
static int64_t threads_for(int64_t rows, int64_t cols, int32_t want) {
    int64_t n = want < 1 ? 1 : (want > MAX_THREADS ? MAX_THREADS : want);
    int64_t by_work = (rows * cols) / 16384;
    if (by_work < n) n = by_work < 1 ? 1 : by_work;
    if (rows < n) n = rows < 1 ? 1 : rows;
    return n;
}

#define RUN_JOBS(JobT, fn, args, dtype_, cols, populate_)                          \
    do {                                                                           \
        int64_t nt = threads_for((args)->rows, (cols), (args)->nthreads);          \
        JobT jobs[MAX_THREADS];                                                    \
        int64_t per = (args)->rows / nt, extra = (args)->rows % nt, r = 0;         \
        for (int64_t q = 0; q < nt; q++) {                                         \
            int64_t len = per + (q < extra ? 1 : 0);                               \
            jobs[q].a = (args);                                                    \
            jobs[q].r0 = r;                                                        \
            jobs[q].r1 = r + len;                                                  \
            jobs[q].num = jobs[q].den = 0.0;                                       \
            jobs[q].dtype = (dtype_);                                              \
            jobs[q].populate = (populate_);                                        \
            r += len;                                                              \
        }                                                                          \
        run_parts(jobs, sizeof(JobT), fn, nt);                                     \
        double num = 0.0, den = 0.0;                                               \
        for (int64_t q = 0; q < nt; q++) {                                         \
            num += jobs[q].num;                                                    \
            den += jobs[q].den;                                                    \
        }                                                                          \
        (args)->num = num;                                                         \
        (args)->den = den;                                                         \
    } while (0)

/* dtype: 0 float32, 1 float64. Returns 0. */
int wce_softmax(SoftmaxArgs *a, int dtype) {
    a->nbad = 0;
    int64_t bytes = a->rows * a->classes * (dtype ? 8 : 4);
    int populate_ = advise_grad(a->grad, a->x, bytes);
    RUN_JOBS(SoftmaxJob, softmax_job, a, dtype, a->classes, populate_);
    return 0;
}

int wce_sigmoid(SigmoidArgs *a, int dtype) {
    int64_t bytes = a->rows * a->cols * (dtype ? 8 : 4);
    int populate_ = advise_grad(a->grad, a->z, bytes);
    RUN_JOBS(SigmoidJob, sigmoid_job, a, dtype, a->cols, populate_);
    return 0;
}

/* The static denominator of "mean" (kept rows, den_kind 1) or "weighted_mean"
 * (their label and sample weights, den_kind 2), from the labels alone. */
double wce_softmax_den(const SoftmaxArgs *a, int dtype) {
    double den = 0.0;
    if (a->den_kind == 2 && !dtype && !a->sample_weight && a->label_weight) {
        /* the common case: class weights by label, float32 */
        const float *lw = (const float *)a->label_weight;
        for (int64_t i = 0; i < a->rows; i++) {
            int64_t y = a->labels[i];
            if (!(a->has_ignore && y == a->ignore_index)) den += lw[y];
        }
        return den;
    }
    for (int64_t i = 0; i < a->rows; i++) {
        int64_t y = a->labels[i];
        if (a->has_ignore && y == a->ignore_index) continue;
        if (a->den_kind == 2)
            den += row_weight(a, i, y, 0, dtype);
        else
            den += 1.0;
    }
    return den;
}

/* How many labels are neither a class id in [0, classes) nor ignore_index. */
int64_t wce_count_bad_labels(const SoftmaxArgs *a) {
    int64_t bad = 0;
    for (int64_t i = 0; i < a->rows; i++) {
        int64_t y = a->labels[i];
        bad += (y < 0 || y >= a->classes) && !(a->has_ignore && y == a->ignore_index);
    }
    return bad;
}

/* Sizes of the argument structs, checked by the ctypes side at load time. */
int64_t wce_softmax_args_size(void) { return (int64_t)sizeof(SoftmaxArgs); }
int64_t wce_sigmoid_args_size(void) { return (int64_t)sizeof(SigmoidArgs); }

/* ------------------------------------------------------------------------- */
/* The Python module: empty, it only lets setuptools build and install this.  */
/* ------------------------------------------------------------------------- */
static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_kernels",
    .m_doc = "Compiled CPU kernels of wce's fused losses (loaded with ctypes).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&kernels_module); }
