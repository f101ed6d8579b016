/* This file implements the Winograd convolution declared in
 * conv_winograd.h.
 *
 * Why it exists: ResNet's and SqueezeNet's 3x3 convs already run near the
 * CPU's peak FLOP rate on conv_direct.c's kernel, as they do in ONNX
 * Runtime, so the only way to be faster is fewer FLOPs.  F(2x2, 3x3)
 * computes a 2x2 output tile from a 4x4 input tile d as
 *
 *     Y = A^T [ sum_c (G g G^T) .* (B^T d B) ] A
 *
 * where the 16 element-wise products summed over the input channels are
 * 16 matrix products U_xi [M x C] . V_xi [C x tiles], xi the position in
 * the 4x4 transformed tile: 16 multiplications per output tile and channel
 * pair instead of 36.  The transforms' coefficients are 0, +-1 and +-1/2,
 * so the result differs from the direct sum by rounding only (a few ulp of
 * the largest partial sum; F(4x4, 3x3) would save more but loses digits).
 *
 * The work is split into blocks of tiles (tiles run over the images, rows
 * and columns of the output in order).  A block is transformed into V,
 * multiplied by the 16 packed U on the engine of sgemm.c, and the 16
 * products M are transformed back and stored with the epilogue, all by
 * one thread, so that V and M stay in its caches.  Both transforms work
 * on 16 consecutive tiles of one tile row at a time, tiles in the vector
 * lanes: an input row of 16 tiles is 34 consecutive floats, split into
 * even and odd columns, and an output row of 16 tiles is 32 consecutive
 * floats, interleaved from two vectors. */
#include <stdlib.h>
#include <string.h>
#include "conv_winograd.h"
#include "epilogue512.h"
#include "ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "../vecmath.h"
#define HAVE_X86 1
#endif

#define XI 16   /* positions in a transformed tile */

struct convw_w {
    int64_t m, c;
    sgemm_pa *u[XI];   /* U_xi, M x C */
};

void convw_free(convw_w *w)
{
    if (!w) return;
    for (int i = 0; i < XI; i++) sgemm_pa_free(w->u[i]);
    free(w);
}

int64_t convw_rows(const convw_w *w) { return w->m; }
int64_t convw_channels(const convw_w *w) { return w->c; }

convw_w *convw_pack(const float *w, int64_t m, int64_t c)
{
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (m <= 0 || c <= 0 || !__builtin_cpu_supports("avx512f")) return NULL;
    convw_w *p = calloc(1, sizeof *p);
    float *u = malloc(sizeof(float) * XI * (size_t)(m * c));
    if (!p || !u) {
        free(p);
        free(u);
        return NULL;
    }
    p->m = m;
    p->c = c;
    /* G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], in double so
     * that U is the exact transform rounded once. */
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int64_t o = 0; o < m; o++)
        for (int64_t i = 0; i < c; i++) {
            const float *g = w + (o * c + i) * 9;
            double gg[4][3];
            for (int r = 0; r < 4; r++)
                for (int k = 0; k < 3; k++)
                    gg[r][k] = G[r][0] * g[k] + G[r][1] * g[3 + k] + G[r][2] * g[6 + k];
            for (int r = 0; r < 4; r++)
                for (int s = 0; s < 4; s++)
                    u[((int64_t)(r * 4 + s) * m + o) * c + i] =
                        (float)(gg[r][0] * G[s][0] + gg[r][1] * G[s][1] + gg[r][2] * G[s][2]);
        }
    for (int xi = 0; xi < XI; xi++)
        if (!(p->u[xi] = sgemm_pack_a(u + (int64_t)xi * m * c, c, m, c))) {
            free(u);
            convw_free(p);
            return NULL;
        }
    free(u);
    return p;
#else
    (void)w;
    (void)m;
    (void)c;
    return NULL;
#endif
}

#ifdef HAVE_X86
typedef struct wjob {
    const convw_w *w;
    const convw_args *a;
    int64_t th, tw, tiles;      /* tile rows and columns per image, tiles in all */
    int64_t block;              /* tiles per block */
    int64_t parts, part_rows;   /* output channels split in parts of part_rows (a multiple of the engine's mr) */
    int64_t v_step, m_step;     /* floats from V_xi to V_xi+1, and from M_xi to M_xi+1 */
    float *buf;                 /* per thread: V (XI x v_step), then M (XI x m_step) */
    size_t per_thread;          /* floats */
} wjob;

/* The argument of pack_v: one V_xi, C rows of `ld` tiles. */
typedef struct vsrc {
    const float *v;
    int64_t ld;
} vsrc;

/* sgemm_pack_b_fn: V_xi's rows k0.. and columns j0.. as the engine's
 * slivers (V is built row-major so the transforms store whole vectors). */
__attribute__((target("avx512f"))) static void pack_v(void *arg, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                                                      int nr, float *dst, float *lanes)
{
    (void)lanes;
    const vsrc *s = arg;
    for (int64_t j = 0; j < nc; j += nr, dst += nr * kc) {
        int64_t cols = nc - j < nr ? nc - j : nr;
        const float *src = s->v + k0 * s->ld + j0 + j;
        if (nr == 32) {
            __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
            __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
            for (int64_t k = 0; k < kc; k++) {
                _mm512_store_ps(dst + k * 32, _mm512_maskz_loadu_ps(m0, src + k * s->ld));
                _mm512_store_ps(dst + k * 32 + 16, _mm512_maskz_loadu_ps(m1, src + k * s->ld + 16));
            }
        } else {
            for (int64_t k = 0; k < kc; k++) {
                memcpy(dst + k * nr, src + k * s->ld, sizeof(float) * (size_t)cols);
                memset(dst + k * nr + cols, 0, sizeof(float) * (size_t)(nr - cols));
            }
        }
    }
}

/* A run of at most 16 tiles in one tile row: image, tile row, first tile
 * column, count, and the first's index within the block; with what the
 * transforms need of it, worked out once per block. */
typedef struct seg {
    int64_t img, ty, tx, len, at;
    int64_t in_off;             /* x's offset of input row 0, column 0 of the run, in channel 0 */
    int64_t y0;                 /* the run's first input row */
    __mmask16 ma0, ma1, mb0, mb1;   /* input columns read (input_tiles) */
    __mmask16 c0, c1;           /* output columns written (output_tiles) */
    int two_rows;               /* the run's second output row is inside the map */
} seg;

static inline __mmask16 lanes_mask(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* The bits [lo, hi) of a 64-bit mask (empty when hi <= lo). */
static inline uint64_t bit_range(int64_t lo, int64_t hi)
{
    if (lo < 0) lo = 0;
    if (hi > 64) hi = 64;
    if (hi <= lo) return 0;
    uint64_t top = hi == 64 ? ~0ull : (1ull << hi) - 1;
    return top & ~((1ull << lo) - 1);
}

/* Cuts tiles [t0, t0 + n) into runs (at most n of them). */
static int64_t block_segments(const wjob *j, int64_t t0, int64_t n, seg *out)
{
    const convw_args *a = j->a;
    const int64_t C = j->w->c, H = a->h, W = a->w;
    int64_t k = 0;
    for (int64_t t = t0; t < t0 + n; k++) {
        int64_t img = t / (j->th * j->tw), r = t % (j->th * j->tw);
        seg s = {.img = img, .ty = r / j->tw, .tx = r % j->tw, .at = t - t0};
        s.len = j->tw - s.tx;
        if (s.len > 16) s.len = 16;
        if (s.len > t0 + n - t) s.len = t0 + n - t;
        /* Lane l reads columns base + 2l .. base + 2l + 3 of each input row
         * and writes output columns 2 (tx + l) and 2 (tx + l) + 1. */
        int64_t base = 2 * s.tx - a->pl;
        uint64_t in = bit_range(-base, W - base) & bit_range(0, 2 * s.len + 2);
        s.ma0 = (__mmask16)in;
        s.ma1 = (__mmask16)(in >> 16);
        s.mb0 = (__mmask16)(in >> 2);
        s.mb1 = (__mmask16)(in >> 18);
        s.y0 = 2 * s.ty - a->pt;
        s.in_off = img * C * H * W + s.y0 * W + base;
        uint64_t outc = bit_range(0, a->ow - 2 * s.tx) & bit_range(0, 2 * s.len);
        s.c0 = (__mmask16)outc;
        s.c1 = (__mmask16)(outc >> 16);
        s.two_rows = 2 * s.ty + 1 < a->oh;
        out[k] = s;
        t += s.len;
    }
    return k;
}

/* V_xi[c][s->at + l] = (B^T d B)_xi for the tiles of the runs s[0..ns),
 * every channel: channel by channel, so that each channel's rows are read
 * in order (one stream the prefetcher follows, where run by run it was
 * 4 C streams it did not).  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
__attribute__((target("avx512f"))) static void input_tiles(const wjob *j, const seg *segs, int64_t ns, float *v)
{
    const convw_args *a = j->a;
    const int64_t C = j->w->c, H = a->h, W = a->w, ld = j->block, step = j->v_step;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t c = 0; c < C; c++) {
        for (int64_t q = 0; q < ns; q++) {
            const seg *s = &segs[q];
            const __mmask16 out = lanes_mask(s->len);
            __m512 t[4][4];
            for (int i = 0; i < 4; i++) {
                __m512 d0, d1, d2, d3;
                int64_t y = s->y0 + i;
                if (y < 0 || y >= H) {
                    d0 = d1 = d2 = d3 = _mm512_setzero_ps();
                } else {
                    /* Only the masked-in lanes (inside the row) are read. */
                    const float *p = a->x + s->in_off + c * H * W + i * W;
                    __m512 a0 = _mm512_maskz_loadu_ps(s->ma0, p), a1 = _mm512_maskz_loadu_ps(s->ma1, p + 16);
                    __m512 b0 = _mm512_maskz_loadu_ps(s->mb0, p + 2), b1 = _mm512_maskz_loadu_ps(s->mb1, p + 18);
                    d0 = _mm512_permutex2var_ps(a0, even, a1);
                    d1 = _mm512_permutex2var_ps(a0, odd, a1);
                    d2 = _mm512_permutex2var_ps(b0, even, b1);
                    d3 = _mm512_permutex2var_ps(b0, odd, b1);
                }
                /* d B along the row. */
                t[i][0] = _mm512_sub_ps(d0, d2);
                t[i][1] = _mm512_add_ps(d1, d2);
                t[i][2] = _mm512_sub_ps(d2, d1);
                t[i][3] = _mm512_sub_ps(d1, d3);
            }
            float *vc = v + c * ld + s->at;
            for (int k = 0; k < 4; k++) {
                /* B^T (d B) down column k. */
                _mm512_mask_storeu_ps(vc + (0 * 4 + k) * step, out, _mm512_sub_ps(t[0][k], t[2][k]));
                _mm512_mask_storeu_ps(vc + (1 * 4 + k) * step, out, _mm512_add_ps(t[1][k], t[2][k]));
                _mm512_mask_storeu_ps(vc + (2 * 4 + k) * step, out, _mm512_sub_ps(t[2][k], t[1][k]));
                _mm512_mask_storeu_ps(vc + (3 * 4 + k) * step, out, _mm512_sub_ps(t[1][k], t[3][k]));
            }
        }
    }
}

/* y = A^T M A + bias, then the epilogue, for the tiles of the runs
 * s[0..ns) and output channels [m0, m1), channel by channel (each channel's output rows written in
 * order).  A^T = [1 1 1 0; 0 1 -1 -1].  ext: this thread's lanes for the
 * extremes (sgemm_epi.ext), or NULL. */
__attribute__((target("avx512f"))) static void output_tiles(const wjob *j, const seg *segs, int64_t ns,
                                                            int64_t m0, int64_t m1, const float *mm,
                                                            const sgemm_epi *ep, float *ext)
{
    const convw_args *a = j->a;
    const int64_t M = j->w->m, OH = a->oh, OW = a->ow, ld = j->block, step = j->m_step;
    const __m512i lo8 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi8 = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    unsigned st = ep && ext ? ep->ext_stages : 0;
    __m512 lo[EXT_STAGES], hi[EXT_STAGES];
    for (int k = 0; k < EXT_STAGES; k++)
        if (st & 1u << k) {
            lo[k] = _mm512_loadu_ps(ext + k * EXT_STAGE_FLOATS);
            hi[k] = _mm512_loadu_ps(ext + k * EXT_STAGE_FLOATS + EXT_LANES);
        }
    for (int64_t o = m0; o < m1; o++) {
        __m512 b = _mm512_set1_ps(ep && ep->bias ? ep->bias[o] : 0.0f);
        for (int64_t q = 0; q < ns; q++) {
            const seg *s = &segs[q];
            const __mmask16 in = lanes_mask(s->len);
            const float *mo = mm + o * ld + s->at;
            __m512 r0[4], r1[4];
            for (int k = 0; k < 4; k++) {
                __m512 m0 = _mm512_maskz_loadu_ps(in, mo + (0 * 4 + k) * step);
                __m512 m1 = _mm512_maskz_loadu_ps(in, mo + (1 * 4 + k) * step);
                __m512 m2 = _mm512_maskz_loadu_ps(in, mo + (2 * 4 + k) * step);
                __m512 m3 = _mm512_maskz_loadu_ps(in, mo + (3 * 4 + k) * step);
                r0[k] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                r1[k] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            __m512 y00 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r0[0], r0[1]), r0[2]), b);
            __m512 y01 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r0[1], r0[2]), r0[3]), b);
            __m512 y10 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r1[0], r1[1]), r1[2]), b);
            __m512 y11 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r1[1], r1[2]), r1[3]), b);
            /* Row 2 ty: y00 y01 of tile 0, of tile 1, ...; row 2 ty + 1 likewise. */
            __m512 v[4] = {_mm512_permutex2var_ps(y00, lo8, y01), _mm512_permutex2var_ps(y00, hi8, y01),
                           _mm512_permutex2var_ps(y10, lo8, y11), _mm512_permutex2var_ps(y10, hi8, y11)};
            int64_t off = ((s->img * M + o) * OH + 2 * s->ty) * OW + 2 * s->tx;
            float *y = a->y + off;
            const float *res = ep && ep->res ? ep->res + off : NULL;
            for (int r = 0; r < 1 + s->two_rows; r++)
                for (int h = 0; h < 2; h++) {
                    __mmask16 m = h ? s->c1 : s->c0;
                    epi_store512(v[2 * r + h], m, y + r * OW + 16 * h, res ? res + r * OW + 16 * h : NULL, ep, st,
                                 lo, hi);
                }
        }
    }
    for (int k = 0; k < EXT_STAGES; k++)
        if (st & 1u << k) {
            _mm512_storeu_ps(ext + k * EXT_STAGE_FLOATS, lo[k]);
            _mm512_storeu_ps(ext + k * EXT_STAGE_FLOATS + EXT_LANES, hi[k]);
        }
}

/* Runs per block at most: one per tile. */
#define MAX_BLOCK 256

/* Items t in [t0, t1): part t % parts of block t / parts.  A thread given
 * several parts of a block in a row transforms its input once. */
static void wino_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const wjob *j = arg;
    const int64_t ld = j->block, M = j->w->m;
    float *v = j->buf + (size_t)tid * j->per_thread;
    float *mm = v + XI * j->v_step;
    const sgemm_epi *ep = j->a->ep;
    float *ext = ep && ep->ext ? ep->ext + (int64_t)tid * EXT_FLOATS : NULL;
    seg segs[MAX_BLOCK];
    int64_t have = -1, ns = 0;   /* the block whose input is in v */
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t / j->parts, p = t % j->parts;
        int64_t first = b * ld, n = j->tiles - first < ld ? j->tiles - first : ld;
        int64_t m0 = p * j->part_rows, m1 = m0 + j->part_rows < M ? m0 + j->part_rows : M;
        if (b != have) {
            ns = block_segments(j, first, n, segs);
            input_tiles(j, segs, ns, v);
            have = b;
        }
        for (int xi = 0; xi < XI; xi++) {
            vsrc src = {v + xi * j->v_step, ld};
            sgemm_packed_rows(j->w->u[xi], m0, m1, n, pack_v, &src, mm + xi * j->m_step, ld, NULL, NULL);
        }
        output_tiles(j, segs, ns, m0, m1, mm, ep, ext);
    }
}
#endif

/* V and M of a block together in about this many bytes (up to MAX_BLOCK
 * tiles).  More than L2 holds: the 16 GEMMs are short (K = C) and need
 * wide blocks to run near peak -- with 512 KiB ResNet18 (batch 8, one
 * thread) ran 58 img/s, with 2-4 MiB 69-71; 2 MiB was no slower than 4 on
 * two threads, where the two threads' blocks share L3. */
#define BLOCK_BYTES (2048 * 1024)

int convw_run(const convw_w *w, const convw_args *a, threadpool *pool)
{
#ifdef HAVE_X86
    if (a->ep && a->ep->post) return -1;
    if (a->n <= 0 || a->oh <= 0 || a->ow <= 0) return 0;
    wjob j = {.w = w, .a = a, .th = (a->oh + 1) / 2, .tw = (a->ow + 1) / 2};
    j.tiles = a->n * j.th * j.tw;
    int nt = tp_nthreads(pool);
    int64_t per_tile = XI * (w->c + w->m) * (int64_t)sizeof(float);
    int64_t block = BLOCK_BYTES / per_tile / 32 * 32;
    if (block < 32) block = 32;
    if (block > MAX_BLOCK) block = MAX_BLOCK;
    /* At least two items per thread, so that none waits long for another's
     * last: first by splitting the output channels (each part repeats only
     * the cheap input transform), then by narrower blocks -- never narrower
     * than the engine's tiles, nor parts shorter than 4 of its panels. */
    const int64_t want = nt > 1 ? 2 * (int64_t)nt : 1, mr = sgemm_pa_mr(w->u[0]);
    int64_t blocks = (j.tiles + block - 1) / block, parts = 1;
    int64_t max_parts = w->m / (4 * mr) > 1 ? w->m / (4 * mr) : 1;
    if (blocks < want) parts = (want + blocks - 1) / blocks < max_parts ? (want + blocks - 1) / blocks : max_parts;
    if (blocks * parts < want) {
        int64_t per = (want + parts - 1) / parts;
        block = ((j.tiles + per - 1) / per + 15) / 16 * 16;
        if (block < 32) block = 32;
    }
    j.part_rows = ((w->m + parts - 1) / parts + mr - 1) / mr * mr;
    j.parts = (w->m + j.part_rows - 1) / j.part_rows;
    j.block = block;
    /* The 16 V_xi (and M_xi) a transform visits in turn start one cache
     * line apart modulo 4 KiB, not in one L1 set: with C * block floats a
     * multiple of 4 KiB they all hit the same set and evict each other. */
    j.v_step = (w->c * block + 15) / 16 * 16 + 16;
    j.m_step = (w->m * block + 15) / 16 * 16 + 16;
    j.per_thread = (size_t)(XI * (j.v_step + j.m_step)) + 16;
    j.buf = op_scratch(4, sizeof(float) * j.per_thread * (size_t)nt + 64);
    if (!j.buf) return -2;
    tp_parallel_for(pool, (j.tiles + block - 1) / block * j.parts, 1, wino_task, &j);
    return 0;
#else
    (void)w;
    (void)a;
    (void)pool;
    return -1;
#endif
}
