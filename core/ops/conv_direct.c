/* This file implements the output-channel-vectorized direct convolution
 * declared in conv_direct.h.
 *
 * Why it exists: the im2col engine (conv.c + sgemm_packed) broadcasts the
 * weights and loads the input as vectors, so every product first copies
 * the input into the kernel's sliver layout, and output rows that are not
 * a multiple of 32 wide (56, 28, 14, 7 in ResNets) leave tiles partly
 * empty.  Here the roles are swapped, as in ONNX Runtime's NCHWc kernels:
 * a tile is 32 output channels (two vectors of weights, packed once) by R
 * consecutive output positions of one row, each position's input value
 * broadcast from where it lies.  Positions in a row read inputs `step`
 * (the stride, 1 or 2) apart for every tap, so a tile needs one base
 * pointer and K tap offsets, and R can be fitted to the row (at most
 * R_MAX; rows are cut into near-equal tiles, so a 56-wide row is 4 x 14,
 * and rows of 7 or fewer go two to a tile: never a ragged edge tile).
 *
 * Each tile runs over the whole K in registers (no partial sums through
 * memory), then adds the bias per channel in registers, transposes the
 * 32 x R block to channel rows and applies the residual, clamp and SiLU
 * while storing those rows into NCHW. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "conv_direct.h"
#include "epilogue512.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "../vecmath.h"
#define HAVE_X86 1
#endif

/* Positions per tile at most: 2 x 14 accumulators, 2 weight vectors and
 * a broadcast fill the 32 vector registers. */
#define R_MAX 14
#define CO 32   /* output channels per tile */

struct convd_w {
    int64_t m, k, nb;   /* nb: blocks of CO channels */
    float *data;        /* block b: k-major, K x CO floats, zero past M */
};

convd_w *convd_pack(const float *w, int64_t m, int64_t k)
{
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (m <= 0 || k <= 0 || !__builtin_cpu_supports("avx512f")) return NULL;
    convd_w *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->m = m;
    p->k = k;
    p->nb = (m + CO - 1) / CO;
    size_t floats = (size_t)(p->nb * k * CO);
    p->data = aligned_alloc(64, (sizeof(float) * floats + 63) / 64 * 64);
    if (!p->data) {
        free(p);
        return NULL;
    }
    for (int64_t b = 0; b < p->nb; b++)
        for (int64_t kk = 0; kk < k; kk++) {
            float *d = p->data + (b * k + kk) * CO;
            for (int c = 0; c < CO; c++) {
                int64_t row = b * CO + c;
                d[c] = row < m ? w[row * k + kk] : 0.0f;
            }
        }
    return p;
#else
    (void)w;
    (void)m;
    (void)k;
    return NULL;
#endif
}

void convd_free(convd_w *w)
{
    if (!w) return;
    free(w->data);
    free(w);
}

int64_t convd_rows(const convd_w *w) { return w->m; }
int64_t convd_depth(const convd_w *w) { return w->k; }

#ifdef HAVE_X86
typedef struct djob {
    const convd_w *w;
    const convd_args *a;
    int64_t group;              /* weight blocks per group (see direct_task) */
    int paired;                 /* rows go two by two (see tile_pair) */
    int64_t units;              /* rows, or row pairs, per image */
} djob;

/* Bytes of packed weights a block group may take: about half of L2. */
#define GROUP_BYTES (512 * 1024)

/* out[c] = column c of the 16 x 16 matrix whose rows are v[0..15]. */
__attribute__((target("avx512f"), always_inline))
static inline void transpose16(__m512 v[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    /* In each 128-bit lane: u[4i + c] holds column c of rows 4i..4i+3. */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    /* t[c] (c < 4): lanes 0 and 2 of u[c] and u[c + 4]; t[c + 4]: lanes 1
     * and 3; likewise t[8..15] from u[8..15]. */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(u[c], u[c + 4], 0x88);
        t[c + 4] = _mm512_shuffle_f32x4(u[c], u[c + 4], 0xdd);
        t[c + 8] = _mm512_shuffle_f32x4(u[c + 8], u[c + 12], 0x88);
        t[c + 12] = _mm512_shuffle_f32x4(u[c + 8], u[c + 12], 0xdd);
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        v[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
        v[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xdd);
    }
}

/* Transposes acc[0..15] (vector r: the 16 channels at position r) and
 * stores the first nc channel rows (lane r = position r < R) at y, channel
 * stride plane, after the residual, the clamp and SiLU -- folding the
 * stages ep->ext_stages asks for into this thread's lanes ep->ext
 * (direct_task points it there), as sgemm.h's EXT_* describe. */
__attribute__((target("avx512f"), always_inline))
static inline void store_rows(const int EXT, __m512 acc[16], int R, int64_t nc, float *y, const float *res,
                              int64_t plane, const sgemm_epi *ep)
{
    const __mmask16 mask = (__mmask16)((1u << R) - 1);
    transpose16(acc);
    if (nc > 16) nc = 16;
    /* EXT (compile time): inference runs the code it ran before. */
    unsigned st = EXT && ep && ep->ext ? ep->ext_stages : 0;
    __m512 lo[EXT_STAGES], hi[EXT_STAGES];
    for (int s = 0; s < EXT_STAGES; s++)
        if (st & 1u << s) {
            lo[s] = _mm512_loadu_ps(ep->ext + s * EXT_STAGE_FLOATS);
            hi[s] = _mm512_loadu_ps(ep->ext + s * EXT_STAGE_FLOATS + EXT_LANES);
        }
    for (int c = 0; c < nc; c++)
        epi_store512(acc[c], mask, y + c * plane, res ? res + c * plane : NULL, ep, st, lo, hi);
    for (int s = 0; s < EXT_STAGES; s++)
        if (st & 1u << s) {
            _mm512_storeu_ps(ep->ext + s * EXT_STAGE_FLOATS, lo[s]);
            _mm512_storeu_ps(ep->ext + s * EXT_STAGE_FLOATS + EXT_LANES, hi[s]);
        }
}

/* One tile: CO channels of block `blk` x R positions starting at x (input
 * of position 0 for tap offset 0), written from y (channel m0, position 0).
 * R is a compile-time constant so the accumulators live in registers. */
__attribute__((target("avx512f"), always_inline))
static inline void tile_r(const int R, const int R1, const int S, int64_t dx, const float *wb, int64_t K,
                          const int64_t *roff, const float *x,
                          int64_t m0, int64_t m1, float *y, const float *res, int64_t plane,
                          const sgemm_epi *ep)
{
    __m512 a0[16], a1[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) a0[r] = a1[r] = _mm512_setzero_ps();
    /* The residual rows the epilogue reads are 32 scattered lines, usually
     * from L3 by then: ask for them now, the K loop hides the wait. */
    if (res)
        for (int64_t c = 0; c < m1 - m0; c++) _mm_prefetch((const char *)(res + c * plane), _MM_HINT_T0);
    const float *w = wb;
    for (int64_t k = 0; k < K; k++, w += CO) {
        const float *p = x + roff[k];
        __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
        /* The weights stream from L2 (a block is K x 128 bytes), or at
         * batch 1 from memory on the first row of a block: fetch 32 k
         * (~450 cycles) ahead, which 8 k was too short for. */
        _mm_prefetch((const char *)(w + 32 * CO), _MM_HINT_T0);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m512 b = _mm512_set1_ps(r < R1 ? p[r * S] : p[dx + (r - R1) * S]);
            a0[r] = _mm512_fmadd_ps(b, w0, a0[r]);
            a1[r] = _mm512_fmadd_ps(b, w1, a1[r]);
        }
    }
    if (ep && ep->bias) {
        /* The bias per channel is a vector here, before the transpose. */
        __mmask16 b0 = m1 - m0 >= 16 ? 0xffff : (__mmask16)((1u << (m1 - m0)) - 1);
        __mmask16 b1 = m1 - m0 >= 32 ? 0xffff : m1 - m0 <= 16 ? 0 : (__mmask16)((1u << (m1 - m0 - 16)) - 1);
        __m512 v0 = _mm512_maskz_loadu_ps(b0, ep->bias + m0), v1 = _mm512_maskz_loadu_ps(b1, ep->bias + m0 + 16);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            a0[r] = _mm512_add_ps(a0[r], v0);
            a1[r] = _mm512_add_ps(a1[r], v1);
        }
    }
    if (ep && ep->ext) {
        store_rows(1, a0, R, m1 - m0, y, res, plane, ep);
        if (m1 > m0 + 16) store_rows(1, a1, R, m1 - m0 - 16, y + 16 * plane, res ? res + 16 * plane : NULL, plane, ep);
        return;
    }
    store_rows(0, a0, R, m1 - m0, y, res, plane, ep);
    if (m1 > m0 + 16) store_rows(0, a1, R, m1 - m0 - 16, y + 16 * plane, res ? res + 16 * plane : NULL, plane, ep);
}

__attribute__((target("avx512f")))
static void tile(int R, int S, const float *wb, int64_t K, const int64_t *roff, const float *x, int64_t m0,
                 int64_t m1, float *y, const float *res, int64_t plane, const sgemm_epi *ep)
{
#define T(n, s) case n: tile_r(n, n, s, 0, wb, K, roff, x, m0, m1, y, res, plane, ep); break
    if (S == 1) {
        switch (R) {
        T(1, 1); T(2, 1); T(3, 1); T(4, 1); T(5, 1); T(6, 1); T(7, 1);
        T(8, 1); T(9, 1); T(10, 1); T(11, 1); T(12, 1); T(13, 1);
        default: tile_r(R_MAX, R_MAX, 1, 0, wb, K, roff, x, m0, m1, y, res, plane, ep); break;
        }
    } else {
        switch (R) {
        T(1, 2); T(2, 2); T(3, 2); T(4, 2); T(5, 2); T(6, 2); T(7, 2);
        T(8, 2); T(9, 2); T(10, 2); T(11, 2); T(12, 2); T(13, 2);
        default: tile_r(R_MAX, R_MAX, 2, 0, wb, K, roff, x, m0, m1, y, res, plane, ep); break;
        }
    }
#undef T
}

/* Two whole rows of W <= R_MAX / 2 positions as one tile of 2W: the
 * second row's inputs start dx floats after the first's, its outputs
 * right after the first's (rows of a plane are contiguous).  Maps of 7 x 7
 * and smaller would otherwise get tiles of 7 or fewer positions, which
 * load a weight vector per 7 FMAs instead of per 14. */
__attribute__((target("avx512f")))
static void tile_pair(int W, int S, int64_t dx, const float *wb, int64_t K, const int64_t *roff, const float *x,
                      int64_t m0, int64_t m1, float *y, const float *res, int64_t plane, const sgemm_epi *ep)
{
#define P(n, s) case n: tile_r(2 * n, n, s, dx, wb, K, roff, x, m0, m1, y, res, plane, ep); break
    if (S == 1) {
        switch (W) {
        P(1, 1); P(2, 1); P(3, 1); P(4, 1); P(5, 1); P(6, 1);
        default: tile_r(14, 7, 1, dx, wb, K, roff, x, m0, m1, y, res, plane, ep); break;
        }
    } else {
        switch (W) {
        P(1, 2); P(2, 2); P(3, 2); P(4, 2); P(5, 2); P(6, 2);
        default: tile_r(14, 7, 2, dx, wb, K, roff, x, m0, m1, y, res, plane, ep); break;
        }
    }
#undef P
}

/* Items t in [t0, t1): t = ((group * n + image) * units + unit) * G + b,
 * block group * G + b of output row (or row pair) `unit` of `image`.  The G blocks of a
 * group read the same input rows one after the other (from L1/L2, where
 * block-by-block passes over a batch of inputs from L3 stalled on every
 * line: 1x1 convs with a short K ran at a fifth of the others), while
 * their weights together stay in L2. */
static void direct_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const djob *j = arg;
    const convd_args *a = j->a;
    /* Calibration: this thread's lanes for the extremes (sgemm_epi.ext). */
    sgemm_epi own;
    const sgemm_epi *ep = a->ep;
    if (ep && ep->ext) {
        own = *ep;
        own.ext = ep->ext + (int64_t)tid * EXT_FLOATS;
        ep = &own;
    }
    const convd_w *w = j->w;
    const int64_t W = a->width, G = j->group, units = j->units;
    const int64_t n_tiles = (W + R_MAX - 1) / R_MAX;
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t % G, r = t / G;
        int64_t u = r % units, gi = r / units;
        int64_t q = j->paired ? 2 * u : u;
        int64_t img = gi % a->n, blk = gi / a->n * G + b;
        if (blk >= w->nb) continue;   /* the last group's missing blocks */
        int64_t m0 = blk * CO, m1 = m0 + CO < w->m ? m0 + CO : w->m;
        const float *x = a->x + img * a->img_stride + a->row_off[q];
        int64_t yo = (img * w->m + m0) * a->plane + q * W;
        float *y = a->y + yo;
        const float *res = ep && ep->res ? ep->res + yo : NULL;
        const float *wb = w->data + blk * w->k * CO;
        if (j->paired && q + 1 < a->rows) {
            tile_pair((int)W, (int)a->step, a->row_off[q + 1] - a->row_off[q], wb, w->k, a->roff, x, m0, m1, y,
                      res, a->plane, ep);
            continue;
        }
        /* Near-equal tiles: W = n_tiles * base + extra, the first `extra`
         * tiles one position wider. */
        int64_t base = W / n_tiles, extra = W % n_tiles, o = 0;
        for (int64_t i = 0; i < n_tiles; i++) {
            int R = (int)(base + (i < extra));
            tile(R, (int)a->step, wb, w->k, a->roff, x + o * a->step, m0, m1, y + o, res ? res + o : NULL,
                 a->plane, ep);
            o += R;
        }
    }
}

#endif

int convd_run(const convd_w *w, const convd_args *a, threadpool *pool)
{
#ifdef HAVE_X86
    if ((a->ep && a->ep->post) || (a->step != 1 && a->step != 2)) return -1;
    if (a->n <= 0 || a->rows <= 0 || a->width <= 0) return 0;
    djob j = {.w = w, .a = a};
    int64_t gmax = GROUP_BYTES / (w->k * CO * (int64_t)sizeof(float));
    if (gmax < 1) gmax = 1;
    int64_t groups = (w->nb + gmax - 1) / gmax;
    j.group = (w->nb + groups - 1) / groups;
    j.paired = a->width <= R_MAX / 2 && a->rows > 1;
    j.units = j.paired ? (a->rows + 1) / 2 : a->rows;
    /* Runs of at least one unit's G blocks, so a run shares its input rows
     * across the blocks of its group; the pool's runs shrink towards the
     * end, so no thread idles at the end of a conv for another's last
     * image (fixed chunks were an image each at batch 8 on 2 threads). */
    tp_parallel_for(pool, groups * j.group * a->n * j.units, j.group, direct_task, &j);
    return 0;
#else
    (void)w;
    (void)a;
    (void)pool;
    return -1;
#endif
}
