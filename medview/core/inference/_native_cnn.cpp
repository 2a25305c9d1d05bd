// The CPU kernels behind medview.core.inference.native_cnn: a plain conv-ReLU-pool CNN (the bundled CamNet's
// shape) run with Winograd F(2x2, 3x3) convolutions, each fused with its bias, ReLU and 2x2 max pooling.
//
// Why: a direct 3x3 convolution already runs at the core's FMA peak in both torch (oneDNN) and ONNX Runtime
// (MLAS), so the only way to be faster is fewer multiplications. F(2x2, 3x3) computes each 2x2 output tile
// from a 4x4 input tile with 16 products per input/output channel pair instead of 36, and its 2x2 output tile
// is exactly one 2x2 pooling window, so pooling costs nothing extra. The transforms only add and subtract.
// Numerically it differs from a direct convolution by rounding only (about 1e-6 relative here); the Python
// side compares it with the TorchScript reference before it is ever used.
//
// Layout: activations are kept per image as H x W x C (channels innermost, C a multiple of 8) with a zero
// border of one pixel, so every 4x4 tile read is in bounds and 8 channels are one AVX2 vector.
// The C ABI is called through ctypes (which releases the GIL); images are shared out over std::threads.
// The kernels are compiled for AVX2 + FMA only; mv_native_supported() says whether this CPU has them.

#include <Python.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#if defined(_WIN32)
#define MV_EXPORT __declspec(dllexport)
#else
#define MV_EXPORT __attribute__((visibility("default")))
#endif

extern "C" {
typedef struct {
    int cin, cout, k, stride, pad, pool;  // pool: 1 for a 2x2/2 max pooling after the ReLU
    const float* weights;                 // see mv_new for each layer kind's order
    const float* bias;                    // [cout]
} MvLayer;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MV_X86 1
#else
#define MV_X86 0
#endif

extern "C" MV_EXPORT int mv_native_supported(void) {
#if MV_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if MV_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#include <immintrin.h>
#include <climits>

namespace {

struct Stem {  // the first convolution, direct: any k, stride, padding; few input channels
    int cin, cout, k, stride, pad;
    std::vector<float> w;  // [cin][k][k][cout]
    std::vector<float> bias;
};

struct Wino {  // a 3x3, stride 1, padding 1 convolution + ReLU (+ 2x2 max pooling)
    int cin, cout, pool;
    std::vector<float> u;  // transformed weights [16][cin][cout]
    std::vector<float> bias;
};

struct Head {  // a 1x1 convolution to the class activation maps, then their mean
    int cin, cout;
    std::vector<float> w;  // [cin][cout]
    std::vector<float> bias;
};

struct Work {  // one thread's buffers, made on its first call and kept (their zero borders stay zero)
    bool ready = false;
    std::vector<float> input;              // [cin][H + 2 pad][W + 2 pad]
    std::vector<std::vector<float>> acts;  // padded HWC activations: stem output, then each Wino layer's
    std::vector<float> v, m;               // a block's transformed inputs [16][tiles][cin], products [16][tiles][cout]
};

struct Net {
    int in_c, in_h, in_w;
    Stem stem;
    std::vector<Wino> layers;
    Head head;
    std::vector<int> h, w;  // spatial size of acts[i] (unpadded)
    std::vector<Work> work;
};

constexpr int kTiles = 48;  // Winograd tiles per block: its v and m stay in the core's L2

inline __m256 bcast(const float* p) { return _mm256_broadcast_ss(p); }

// max(0, v) keeping NaN as torch's ReLU does (maxps returns its second operand where either is NaN)
inline __m256 relu(__m256 v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }

// the 2x2 maximum, NaN where any of the four is NaN (as torch's max pooling)
inline __m256 max4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 top = _mm256_max_ps(_mm256_max_ps(a, b), _mm256_max_ps(c, d));
    const __m256 nan = _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q), _mm256_cmp_ps(c, d, _CMP_UNORD_Q));
    return _mm256_blendv_ps(top, _mm256_set1_ps(__builtin_nanf("")), nan);
}

// ---- the stem: direct convolution, NX output pixels x 8 output channels per step --------------------------
template <int NX, int ST>
inline void stem_pixels(const Stem& s, const float* in, int in_pitch, int in_plane, int y, int x0, int cb,
                        float* out, int out_pitch) {
    __m256 acc[NX];
    #pragma GCC unroll 16
    for (int r = 0; r < NX; ++r) acc[r] = _mm256_setzero_ps();
    const int k = s.k;
    for (int c = 0; c < s.cin; ++c) {
        for (int ky = 0; ky < k; ++ky) {
            const float* row = in + c * in_plane + (y * ST + ky) * in_pitch + x0 * ST;
            const float* wk = s.w.data() + ((c * k + ky) * k) * s.cout + cb;
            for (int kx = 0; kx < k; ++kx) {
                const __m256 wv = _mm256_loadu_ps(wk + kx * s.cout);
                #pragma GCC unroll 16
                for (int r = 0; r < NX; ++r) acc[r] = _mm256_fmadd_ps(bcast(row + r * ST + kx), wv, acc[r]);
            }
        }
    }
    const __m256 b = _mm256_loadu_ps(s.bias.data() + cb);
    #pragma GCC unroll 16
    for (int r = 0; r < NX; ++r)
        _mm256_storeu_ps(out + ((y + 1) * out_pitch + x0 + r + 1) * s.cout + cb,
                         relu(_mm256_add_ps(acc[r], b)));
}

template <int ST>
void run_stem_strided(const Stem& s, const float* in, int in_h, int in_w, float* out, int oh, int ow) {
    const int in_pitch = in_w + 2 * s.pad, in_plane = (in_h + 2 * s.pad) * in_pitch, out_pitch = ow + 2;
    for (int cb = 0; cb < s.cout; cb += 8) {
        for (int y = 0; y < oh; ++y) {
            int x = 0;
            for (; x + 8 <= ow; x += 8) stem_pixels<8, ST>(s, in, in_pitch, in_plane, y, x, cb, out, out_pitch);
            for (; x < ow; ++x) stem_pixels<1, ST>(s, in, in_pitch, in_plane, y, x, cb, out, out_pitch);
        }
    }
}

void run_stem(const Stem& s, const float* in, int in_h, int in_w, float* out, int oh, int ow) {
    if (s.stride == 1) run_stem_strided<1>(s, in, in_h, in_w, out, oh, ow);
    else run_stem_strided<2>(s, in, in_h, in_w, out, oh, ow);
}

// ---- Winograd F(2x2, 3x3) ----------------------------------------------------------------------------------
// V = B^T d B, B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]; Y = A^T M A, A^T = [[1,1,1,0],[0,1,-1,-1]]
void input_transform(const float* in, int pitch, int cin, int tw, int t0, int nt, float* v) {
    for (int b = 0; b < nt; ++b) {
        const int t = t0 + b, ty = t / tw, tx = t % tw;
        const float* base = in + ((2 * ty) * pitch + 2 * tx) * cin;
        for (int c = 0; c < cin; c += 8) {
            __m256 d[4][4], s[4][4];
            #pragma GCC unroll 16
            for (int i = 0; i < 4; ++i)
                #pragma GCC unroll 16
                for (int j = 0; j < 4; ++j) d[i][j] = _mm256_loadu_ps(base + (i * pitch + j) * cin + c);
            #pragma GCC unroll 16
            for (int j = 0; j < 4; ++j) {
                s[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
                s[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
                s[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
                s[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
            }
            #pragma GCC unroll 16
            for (int i = 0; i < 4; ++i) {
                float* dst = v + ((i * 4) * nt + b) * cin + c;  // [p][tile][cin], p = 4 i + j
                const size_t step = (size_t)nt * cin;
                _mm256_storeu_ps(dst, _mm256_sub_ps(s[i][0], s[i][2]));
                _mm256_storeu_ps(dst + step, _mm256_add_ps(s[i][1], s[i][2]));
                _mm256_storeu_ps(dst + 2 * step, _mm256_sub_ps(s[i][2], s[i][1]));
                _mm256_storeu_ps(dst + 3 * step, _mm256_sub_ps(s[i][1], s[i][3]));
            }
        }
    }
}

// NT tiles x NV*8 output channels of one Winograd point: a register-blocked product over the input channels
template <int NT, int NV>
inline void product_block(const float* v, int cin, const float* u, int cout, float* m) {
    __m256 acc[NT][NV];
    #pragma GCC unroll 16
    for (int r = 0; r < NT; ++r)
        #pragma GCC unroll 16
        for (int q = 0; q < NV; ++q) acc[r][q] = _mm256_setzero_ps();
    for (int ci = 0; ci < cin; ++ci) {
        __m256 w[NV];
        #pragma GCC unroll 16
        for (int q = 0; q < NV; ++q) w[q] = _mm256_loadu_ps(u + ci * cout + 8 * q);
        #pragma GCC unroll 16
        for (int r = 0; r < NT; ++r) {
            const __m256 x = bcast(v + r * cin + ci);
            #pragma GCC unroll 16
            for (int q = 0; q < NV; ++q) acc[r][q] = _mm256_fmadd_ps(x, w[q], acc[r][q]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < NT; ++r)
        #pragma GCC unroll 16
        for (int q = 0; q < NV; ++q) _mm256_storeu_ps(m + r * cout + 8 * q, acc[r][q]);
}

template <int NV, int NT>
inline void product_rows(const float* v, int cin, const float* u, int cout, float* m, int nt) {
    int b = 0;
    for (; b + NT <= nt; b += NT) product_block<NT, NV>(v + b * cin, cin, u, cout, m + b * cout);
    for (; b < nt; ++b) product_block<1, NV>(v + b * cin, cin, u, cout, m + b * cout);
}

void products(const Wino& l, const float* v, float* m, int nt) {
    for (int p = 0; p < 16; ++p) {
        const float* vp = v + (size_t)p * nt * l.cin;
        const float* up = l.u.data() + (size_t)p * l.cin * l.cout;
        float* mp = m + (size_t)p * nt * l.cout;
        int cb = 0;
        for (; cb + 16 <= l.cout; cb += 16) product_rows<2, 6>(vp, l.cin, up + cb, l.cout, mp + cb, nt);
        for (; cb < l.cout; cb += 8) product_rows<1, 8>(vp, l.cin, up + cb, l.cout, mp + cb, nt);
    }
}

void output_transform(const Wino& l, const float* m, int nt, int t0, int tw, float* out, int out_pitch) {
    const size_t step = (size_t)nt * l.cout;
    for (int b = 0; b < nt; ++b) {
        const int t = t0 + b, ty = t / tw, tx = t % tw;
        for (int c = 0; c < l.cout; c += 8) {
            const float* src = m + (size_t)b * l.cout + c;
            __m256 q[16];
            #pragma GCC unroll 16
            for (int p = 0; p < 16; ++p) q[p] = _mm256_loadu_ps(src + p * step);
            __m256 r0[4], r1[4];
            #pragma GCC unroll 16
            for (int j = 0; j < 4; ++j) {
                r0[j] = _mm256_add_ps(_mm256_add_ps(q[j], q[4 + j]), q[8 + j]);
                r1[j] = _mm256_sub_ps(_mm256_sub_ps(q[4 + j], q[8 + j]), q[12 + j]);
            }
            const __m256 y00 = _mm256_add_ps(_mm256_add_ps(r0[0], r0[1]), r0[2]);
            const __m256 y01 = _mm256_sub_ps(_mm256_sub_ps(r0[1], r0[2]), r0[3]);
            const __m256 y10 = _mm256_add_ps(_mm256_add_ps(r1[0], r1[1]), r1[2]);
            const __m256 y11 = _mm256_sub_ps(_mm256_sub_ps(r1[1], r1[2]), r1[3]);
            const __m256 bias = _mm256_loadu_ps(l.bias.data() + c);
            if (l.pool) {  // max then bias then ReLU: the same number as bias, ReLU, max (all monotonic)
                _mm256_storeu_ps(out + ((ty + 1) * out_pitch + tx + 1) * l.cout + c,
                                 relu(_mm256_add_ps(max4(y00, y01, y10, y11), bias)));
            } else {
                float* o = out + ((2 * ty + 1) * out_pitch + 2 * tx + 1) * l.cout + c;
                _mm256_storeu_ps(o, relu(_mm256_add_ps(y00, bias)));
                _mm256_storeu_ps(o + l.cout, relu(_mm256_add_ps(y01, bias)));
                _mm256_storeu_ps(o + out_pitch * l.cout, relu(_mm256_add_ps(y10, bias)));
                _mm256_storeu_ps(o + (out_pitch + 1) * l.cout, relu(_mm256_add_ps(y11, bias)));
            }
        }
    }
}

void run_wino(const Wino& l, const float* in, int h, int w, float* out, Work& work) {
    const int th = h / 2, tw = w / 2, tiles = th * tw, pitch = w + 2;
    const int out_pitch = l.pool ? tw + 2 : w + 2;
    for (int t0 = 0; t0 < tiles; t0 += kTiles) {
        const int nt = std::min(kTiles, tiles - t0);
        input_transform(in, pitch, l.cin, tw, t0, nt, work.v.data());
        products(l, work.v.data(), work.m.data(), nt);
        output_transform(l, work.m.data(), nt, t0, tw, out, out_pitch);
    }
}

void run_head(const Head& hd, const float* in, int h, int w, float* cam, float* logits) {
    const int pitch = w + 2;
    std::vector<double> sums(hd.cout, 0.0);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const float* f = in + ((y + 1) * pitch + x + 1) * hd.cin;
            for (int k = 0; k < hd.cout; ++k) {
                float s = 0.0f;
                for (int c = 0; c < hd.cin; ++c) s += f[c] * hd.w[c * hd.cout + k];
                s += hd.bias[k];
                cam[(k * h + y) * w + x] = s;
                sums[k] += s;
            }
        }
    }
    for (int k = 0; k < hd.cout; ++k) logits[k] = (float)(sums[k] / (h * w));
}

void prepare(const Net& net, Work& done) {
    if (done.ready) return;
    Work wk;  // built aside and moved in whole: a failed allocation leaves `done` as it was
    const Stem& s = net.stem;
    wk.input.assign((size_t)net.in_c * (net.in_h + 2 * s.pad) * (net.in_w + 2 * s.pad), 0.0f);
    wk.acts.emplace_back((size_t)(net.h[0] + 2) * (net.w[0] + 2) * s.cout, 0.0f);
    size_t widest = 0;
    for (size_t i = 0; i < net.layers.size(); ++i) {
        const Wino& l = net.layers[i];
        wk.acts.emplace_back((size_t)(net.h[i + 1] + 2) * (net.w[i + 1] + 2) * l.cout, 0.0f);
        widest = std::max(widest, (size_t)std::max(l.cin, l.cout));
    }
    wk.v.assign(16 * kTiles * widest, 0.0f);
    wk.m.assign(16 * kTiles * widest, 0.0f);
    wk.ready = true;
    done = std::move(wk);
}

void run_image(Net& net, Work& work, const float* x, float* logits, float* cam) {
    const Stem& s = net.stem;
    const int pitch = net.in_w + 2 * s.pad, rows = net.in_h + 2 * s.pad;
    for (int c = 0; c < net.in_c; ++c)
        for (int y = 0; y < net.in_h; ++y)
            std::memcpy(work.input.data() + (c * rows + y + s.pad) * pitch + s.pad,
                        x + (c * net.in_h + y) * net.in_w, sizeof(float) * net.in_w);
    run_stem(s, work.input.data(), net.in_h, net.in_w, work.acts[0].data(), net.h[0], net.w[0]);
    for (size_t i = 0; i < net.layers.size(); ++i)
        run_wino(net.layers[i], work.acts[i].data(), net.h[i], net.w[i], work.acts[i + 1].data(), work);
    const size_t last = net.layers.size();
    run_head(net.head, work.acts[last].data(), net.h[last], net.w[last], cam, logits);
}

}  // namespace

extern "C" {

// Weights come in the order the kernels read them, cout innermost: layers[0], the stem, [cin][k][k][cout];
// layers[1 .. n-2], 3x3 / 1 / 1 convolutions, Winograd-transformed, [16][cin][cout]; layers[n-1], the 1x1
// head, [cin][cout]. (native_cnn.py's cout_innermost and winograd_weights make them.)
// Returns NULL where the shapes are not ones these kernels run.
MV_EXPORT void* mv_new(const MvLayer* layers, int n, int in_c, int in_h, int in_w, int max_threads) {
    if (n < 2 || max_threads < 1 || in_c < 1 || in_h < 1 || in_w < 1 || !mv_native_supported()) return nullptr;
    // every buffer of one image stays indexable by int
    auto too_big = [](long long a, long long b, long long c) { return a * b * c > INT_MAX; };
    try {
        std::unique_ptr<Net> net(new Net());
        net->in_c = in_c, net->in_h = in_h, net->in_w = in_w;
        const MvLayer& s = layers[0];
        if (s.cin != in_c || s.cout < 8 || s.cout % 8 || s.k < 1 || s.stride < 1 || s.stride > 2 || s.pad < 0 ||
            s.pool || in_h + 2 * s.pad < s.k || in_w + 2 * s.pad < s.k ||
            too_big(in_c, in_h + 2LL * s.pad, in_w + 2LL * s.pad))
            return nullptr;
        net->stem = Stem{s.cin, s.cout, s.k, s.stride, s.pad,
                         std::vector<float>(s.weights, s.weights + (size_t)s.cin * s.k * s.k * s.cout),
                         std::vector<float>(s.bias, s.bias + s.cout)};
        int h = (in_h + 2 * s.pad - s.k) / s.stride + 1, w = (in_w + 2 * s.pad - s.k) / s.stride + 1, c = s.cout;
        if (too_big(h + 2, w + 2, c)) return nullptr;
        net->h.push_back(h), net->w.push_back(w);
        for (int i = 1; i < n - 1; ++i) {
            const MvLayer& l = layers[i];
            if (l.cin != c || l.cout < 8 || l.cout % 8 || l.k != 3 || l.stride != 1 || l.pad != 1 || h < 2 || w < 2 ||
                h % 2 || w % 2 || too_big(h + 2, w + 2, l.cout))
                return nullptr;
            net->layers.push_back(Wino{l.cin, l.cout, l.pool,
                                       std::vector<float>(l.weights, l.weights + (size_t)16 * l.cin * l.cout),
                                       std::vector<float>(l.bias, l.bias + l.cout)});
            c = l.cout;
            if (l.pool) h /= 2, w /= 2;
            net->h.push_back(h), net->w.push_back(w);
        }
        const MvLayer& hd = layers[n - 1];
        if (hd.cin != c || hd.k != 1 || hd.stride != 1 || hd.pad != 0 || hd.pool || hd.cout < 1 ||
            too_big(hd.cout, h, w))
            return nullptr;
        net->head = Head{hd.cin, hd.cout, std::vector<float>(hd.weights, hd.weights + (size_t)hd.cin * hd.cout),
                         std::vector<float>(hd.bias, hd.bias + hd.cout)};
        net->work.resize(max_threads);
        return net.release();
    } catch (const std::exception&) {
        return nullptr;
    }
}

// The spatial size of the class activation maps (written to out[0], out[1]).
MV_EXPORT void mv_cam_size(void* handle, int* out) {
    const Net* net = static_cast<Net*>(handle);
    out[0] = net->h.back(), out[1] = net->w.back();
}

// n images [n][in_c][in_h][in_w] -> logits [n][K] (mean of each map) and maps [n][K][h][w], over up to
// `threads` threads (at most max_threads). One call at a time per handle. Returns 0, or -1 on failure.
MV_EXPORT int mv_run(void* handle, const float* x, int n, float* logits, float* cam, int threads) {
    Net* net = static_cast<Net*>(handle);
    threads = std::max(1, std::min({threads, n, (int)net->work.size()}));
    const size_t in_size = (size_t)net->in_c * net->in_h * net->in_w;
    const size_t cam_size = (size_t)net->head.cout * net->h.back() * net->w.back();
    const int k = net->head.cout;
    // images are handed out one at a time, not in fixed shares: a core that is slowed (another process, a
    // shared virtual machine) takes fewer, instead of the whole batch waiting for its last image
    std::atomic<int> next{0}, done{0};
    auto share = [&](int part) {
        try {
            prepare(*net, net->work[part]);
        } catch (const std::exception&) {  // out of memory: this thread takes no image, the others take them all
            return;
        }
        try {
            for (int i; (i = next.fetch_add(1)) < n; done.fetch_add(1))
                run_image(*net, net->work[part], x + i * in_size, logits + i * k, cam + i * cam_size);
        } catch (const std::exception&) {  // never terminate the process; the image is missing: done < n says so
        }
    };
    std::vector<std::thread> helpers;
    try {
        helpers.reserve(threads);
    } catch (const std::exception&) {
        return -1;
    }
    for (int part = 1; part < threads; ++part) {
        try {
            helpers.emplace_back(share, part);
        } catch (const std::exception&) {  // no more threads to be had: those running take the rest
            break;
        }
    }
    share(0);
    for (std::thread& t : helpers) t.join();
    return done.load() == n ? 0 : -1;
}

MV_EXPORT void mv_free(void* handle) { delete static_cast<Net*>(handle); }

}  // extern "C"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else   // not x86 with GCC or Clang: no kernels, the engine keeps TorchScript
extern "C" {
MV_EXPORT void* mv_new(const MvLayer*, int, int, int, int, int) { return nullptr; }
MV_EXPORT void mv_cam_size(void*, int* out) { out[0] = out[1] = 0; }
MV_EXPORT int mv_run(void*, const float*, int, float*, float*, int) { return -1; }
MV_EXPORT void mv_free(void*) {}
}
#endif

// A Python extension module only so that installers and PyInstaller find and ship the library; its
// functions are reached through ctypes.
static struct PyModuleDef native_module = {PyModuleDef_HEAD_INIT, "_native_cnn",
                                           "CPU kernels for medview's CNN engine (called through ctypes).", -1,
                                           nullptr, nullptr, nullptr, nullptr, nullptr};

PyMODINIT_FUNC PyInit__native_cnn(void) { return PyModule_Create(&native_module); }
