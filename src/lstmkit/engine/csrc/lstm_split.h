// The LSTM family's unit-split loops (forward_split / backward_split, and the LSTMP versions):
// threads that each own some hidden units run a layer-direction's whole time loop in one OpenMP
// region and meet at barriers, instead of forking and joining around each step's product.
// lstm.cpp's forward_impl / backward_impl choose them (split_threads, split_threads_proj) for
// batches too small to give each thread two row blocks, and otherwise run their own loop, whole
// or split over the batch (batch_split in panels.h); all compute the same math (lstm_cell.h).
#pragma once

#include "common.h"
#include "ln.h"
#include "lstm_cell.h"
#include "panels.h"

namespace lstmkit {
namespace lstm {

// Layer norm in the unit-split loops (forward_split / backward_split): its parameters, what training
// keeps per row, and the backward's outputs. Each thread normalises its own columns after the
// threads have met to add up every row's partial sums.
template <typename T>
struct LnSplit {
  const T *ah, *ac, *bc;     // gains of W_hh h (G·H) and of C (H), shift of C (H or null)
  T *zhat, *zrstd, *cstats;  // forward, training: LN(W_hh h) (N, G·H), its 1/σ (N), C's (mean, 1/σ) (N, 2)
  T* draw;                   // backward: ∂L/∂(h W_hhᵀ) (N, G·H)
  // backward: the gains' and shift's gradients, Σ over rows, each thread adding its own columns
  // (no separate passes over the (N, G·H) and (N, H) arrays after the loop). Summed in float within
  // a step, then in double across steps, so long sequences do not lose precision.
  double *dah, *dac, *dbc;  // (G·H), (H), (H or null)
};

// Threads that split a step's hidden units: each owns the same unit columns of every gate block
// in the step's product, its pointwise pass and its rows of h and C, so the threads meet once per
// step (a barrier, with h double-buffered) instead of forking and joining around the product and
// leaving the pointwise pass to one thread. For float32 steps on the panel kernel without a
// projection (LSTMP: split_threads_proj below), when H splits into whole panels; otherwise 1
// (the one-thread loop in forward_impl / backward_impl).
template <typename T>
int64_t split_threads(const Panels<T>& pk, int64_t H, int64_t B, bool proj) {
  return proj ? 1 : unit_split_threads<T>(pk, H, B);
}

// FGR: h is [h, a] (width PW = pk.K), and each thread also writes its units' columns of every
// a-block (its units' sigmoid gates); Gates must then be given (training: saved; inference: scratch).
// Layer norm (`ln`): the threads also meet to normalise each row of the product and of C_t, so
// three barriers per step.
template <typename T, typename Fl>
void forward_split(const Fl& fl, const Layout<Fl>& L, const Steps& st, int64_t nt, const Panels<T>& pk,
                   const T* X, const T* h0, const T* bias, const T* pi, const T* pf, const T* po, const T* Mask,
                   T* Y, T* Hfinal, T* Cs, T* Z, T* HP, T* CP, T* CS, T* Gates, int64_t B, int64_t H, bool fgr,
                   const LnSplit<T>* ln = nullptr) {
  const int64_t GH = pk.N, G = GH / H, U = H / Panels<float>::NR, PW = pk.K;
  const int64_t nblk = PW / H;  // h, then (FGR) the a-blocks
  StepBuffers<T> hbuf(B, PW, h0), hinb(Mask ? B : 0, H);  // h (FGR: [h, a]); with dropout, h ⊙ mask
  std::vector<T> gbuf((fgr || ln) && !Gates ? B * GH : 0);
  RowPartials pz(ln ? nt : 0, B), pc(ln ? nt : 0, B);  // the product's and C's partial row sums
  if (Mask) mask_rows(hinb.at(0), h0, Mask, B, H);
#pragma omp parallel num_threads(nt)
  {
    const int64_t tid = omp_get_thread_num();
    const auto [up0, up1, j0, j1] = thread_share(U, nt);  // this thread's hidden units
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      const T* hcur = hbuf.at(s);
      T* hnext = hbuf.at(s + 1);
      const T* in = Mask ? hinb.at(s) : hcur;  // what enters W_hh
      if (HP)
        for (int64_t k = 0; k < nblk; ++k) copy_cols(in, HP + r0 * PW, n, PW, k * H + j0, k * H + j1);
      for (int64_t g = 0; g < G; ++g) pk.run(g * U + up0, g * U + up1, n, in, PW, Z, GH, false);
      if (ln) {  // LN(h W_hhᵀ) needs every row's sums: fwd_row then normalises its own columns
        for (int64_t r = 0; r < n; ++r) pz.put_moments<T>(tid, r, Z + r * GH, G, H, j0, j1);
#pragma omp barrier
      }
      prefetch_cols(X + r0 * GH, G, H, j0, j1);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        T* gates = Gates ? Gates + row * GH : (gbuf.empty() ? nullptr : gbuf.data() + r * GH);
        if (r + 1 < n) prefetch_cols(X + (row + 1) * GH, G, H, j0, j1);
        T *cp = CP ? CP + row * H : nullptr, *cs = CS ? CS + row * H : nullptr;
        if (ln) {  // α_h ⊙ LN(h W_hhᵀ) inside fwd_row; m comes from LN(C_t) below, so fwd_row skips it
          const auto [mu, rs] = pz.stats(r);
          if (tid == 0 && ln->zrstd) ln->zrstd[row] = T(rs);
          const LnRow<T> lz{ln->ah, T(mu), T(rs), ln->zhat ? ln->zhat + row * GH : nullptr};
          fwd_row<T>(fl, L, H, j0, j1, X + row * GH, Z + r * GH, bias, pi, pf, po, Cs + r * H, cp, cs, gates, nullptr,
                     &lz);
        } else {
          fwd_row<T>(fl, L, H, j0, j1, X + row * GH, Z + r * GH, bias, pi, pf, po, Cs + r * H, cp, cs, gates, Y + row * H);
        }
      }
      if (ln) {  // m = o ⊙ tanh(α_c LN(C_t) + β_c), the same way
        for (int64_t r = 0; r < n; ++r) pc.put_moments<T>(tid, r, Cs + r * H, 1, H, j0, j1);
#pragma omp barrier
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = r0 + r;
          const auto [mu, rs] = pc.stats(r);
          if (tid == 0 && ln->cstats) ln->cstats[row * 2] = T(mu), ln->cstats[row * 2 + 1] = T(rs);
          const T* gates = Gates ? Gates + row * GH : gbuf.data() + r * GH;
          ln_cell_out<T>(fl, L, H, j0, j1, Cs + r * H, gates, ln->ac, ln->bc, T(mu), T(rs), Y + row * H);
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        const T* gates = Gates ? Gates + row * GH : (gbuf.empty() ? nullptr : gbuf.data() + r * GH);
        std::copy(Y + row * H + j0, Y + row * H + j1, hnext + r * PW + j0);
        for (int64_t b = 0, k = 1; fgr && b < G; ++b)  // a_t: the sigmoid gate blocks, in order
          if (b != L.gg) std::copy(gates + b * H + j0, gates + b * H + j1, hnext + r * PW + (k++) * H + j0);
      }
      for (int64_t k = 0; k < nblk; ++k) copy_cols(hcur + n * PW, hnext + n * PW, B - n, PW, k * H + j0, k * H + j1);
      if (Mask) {
        T* inext = hinb.at(s + 1);
        for (int64_t r = 0; r < B; ++r)
          for (int64_t j = j0; j < j1; ++j) inext[r * H + j] = hnext[r * H + j] * Mask[r * H + j];
      }
#pragma omp barrier
    }
  }
  std::copy(hbuf.at(st.T), hbuf.at(st.T) + B * PW, Hfinal);
}

// The backward counterpart: each thread computes dz for its units' gate columns, then (after a
// barrier: the product needs every column of dz) ∂L/∂h_{t-1} for its units, which is all its next
// pointwise pass reads, so again one barrier per step. FGR: DH is ∂L/∂[h, a] (width PW = pk.N), and
// each thread computes its units' columns of every block.
template <typename T, typename Fl>
void backward_split(const Fl& fl, const Layout<Fl>& L, const Steps& st, int64_t nt, const Panels<T>& pk,
                    const T* GY, const T* G, const T* CS, const T* CP, const T* pi, const T* pf, const T* po,
                    const T* Mask, T* DH, T* DC, T* DZ, int64_t H, bool fgr, const LnSplit<T>* ln = nullptr) {
  const int64_t gh = pk.K, U = H / Panels<float>::NR;  // gh = G·H
  const int64_t PW = pk.N, nblk = PW / H, B = st.B, Gn = gh / H;
  // layer norm, per row: the output activation, dy ⊙ α_c, LN(C_t), dy = ∂L/∂(α_c ĉ + β_c) (kept only
  // for this step: the gains' gradients are summed here)
  std::vector<T> lnb(ln ? 4 * B * H : 0);
  RowPartials pz(ln ? nt : 0, B), pc(ln ? nt : 0, B);
#pragma omp parallel num_threads(nt)
  {
    const int64_t tid = omp_get_thread_num();
    const auto [up0, up1, j0, j1] = thread_share(U, nt);
    std::vector<T> gsum(ln ? gh + 2 * H : 0, T(0));  // this step's sums for dah, dac, dbc (this thread's columns)
    T *sah = gsum.data(), *sac = sah + gh, *sbc = ln && ln->bc ? sac + H : nullptr;
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      if (ln) {  // the output's path through LN(C_t): its share of ∂L/∂C_t needs every row's sums
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = r0 + r;
          T* b = lnb.data() + r * 4 * H;
          const auto [a, c] = ln_cell_grad<T>(fl, L, H, j0, j1, GY + row * H, DH + r * PW, CS + row * H, G + row * gh,
                                              ln->cstats[row * 2], ln->cstats[row * 2 + 1], ln->ac, ln->bc, b,
                                              b + 3 * H, b + H, b + 2 * H, sac, sbc);
          pc.put_sums(tid, r, a, c);
        }
#pragma omp barrier
        for (int64_t r = 0; r < n; ++r) {
          const auto [a, c] = pc.sums(r);
          const T* b = lnb.data() + r * 4 * H;
          ln_apply(b + H, b + 2 * H, ln->cstats[(r0 + r) * 2 + 1], T(a / H), T(c / H), j0, j1, DC + r * H, true);
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        if (r + 1 < n) prefetch_row_bwd(G, CS, CP, gh, H, row + 1, j0, j1);
        bwd_row<T>(fl, L, H, GY + row * H, DH + r * PW, DC + r * H, G + row * gh, CS + row * H, CP + row * H, pi,
                   pf, po, DZ + row * gh, j0, j1, fgr ? DH + r * PW + H : nullptr,
                   ln ? lnb.data() + r * 4 * H : nullptr);
      }
      if (ln) {  // dz reached α_h ⊙ LN(h W_hhᵀ): back through the normalisation, this thread's columns
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = r0 + r;
          const T* zh = ln->zhat + row * gh;
          T* dr = ln->draw + row * gh;
          using V = Vec<T>;
          for (int64_t g = 0; g < Gn; ++g)
            for_cols<T>(g * H + j0, g * H + j1, [&](int64_t j, int64_t k) {
              const V dz = V::loadu(DZ + row * gh + j, k);
              (dz * V::loadu(ln->ah + j, k)).store(dr + j, k);
              at::vec::fmadd(dz, V::loadu(zh + j, k), V::loadu(sah + j, k)).store(sah + j, k);
            });
          pz.put_sums(tid, r, blocks_sum<T>(Gn, H, j0, j1, [&](int64_t j, int64_t k) { return V::loadu(dr + j, k); }),
                      blocks_sum<T>(Gn, H, j0, j1, [&](int64_t j, int64_t k) {
                        return V::loadu(dr + j, k) * V::loadu(zh + j, k);
                      }));
        }
#pragma omp barrier
        for (int64_t r = 0; r < n; ++r) {
          const int64_t row = r0 + r;
          const auto [a, c] = pz.sums(r);
          for (int64_t g = 0; g < Gn; ++g)
            ln_apply(ln->draw + row * gh, ln->zhat + row * gh, ln->zrstd[row], T(a / gh), T(c / gh), g * H + j0,
                     g * H + j1, ln->draw + row * gh, false);
        }
        auto flush = [&](T* f, double* d, int64_t c0, int64_t c1) {  // this step's float sums into the totals
          for (int64_t j = c0; j < c1; ++j) d[j] += f[j], f[j] = T(0);
        };
        for (int64_t g = 0; g < Gn; ++g) flush(sah, ln->dah, g * H + j0, g * H + j1);
        flush(sac, ln->dac, j0, j1);
        if (sbc) flush(sbc, ln->dbc, j0, j1);
      }
#pragma omp barrier
      const T* dprod = ln ? ln->draw : DZ;  // ∂L/∂(h_{t-1} W_hhᵀ)
      for (int64_t k = 0; k < nblk; ++k)  // ∂L/∂h_{t-1} (and ∂L/∂a_{t-1}) = dprod W_hh, this thread's units
        pk.run(k * U + up0, k * U + up1, n, dprod + r0 * gh, gh, DH, PW, false);
      if (Mask)
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = j0; j < j1; ++j) DH[r * H + j] *= Mask[r * H + j];
    }
  }
}

// LSTMP (a projection W_hr after the cell): each thread owns H/nt units of the gate product and the
// pointwise pass, and P/nt columns of h_t = m W_hrᵀ; the projection needs all of m, and the next
// product all of h, so the threads meet twice per step. Without recurrent dropout or zoneout.
template <typename T>
int64_t split_threads_proj(const Panels<T>& pk, const Panels<T>& pr, int64_t H, int64_t P, int64_t B) {
  if constexpr (!std::is_same<T, float>::value) {
    return 1;
  } else {
    const int64_t NR = Panels<float>::NR, nt = at::get_num_threads();
    if (!pk.buf.defined() || !pr.buf.defined() || nt < 2 || H % NR || P % NR || at::in_parallel_region()) return 1;
    if (2.0 * B * (pk.N * pk.K + pr.N * pr.K) < kSplitMinFlops) return 1;
    return std::min<int64_t>({nt, H / NR, P / NR});
  }
}

template <typename T, typename Fl>
void forward_split_proj(const Fl& fl, const Layout<Fl>& L, const Steps& st, int64_t nt, const Panels<T>& pk,
                        const Panels<T>& pr, const T* X, const T* h0, const T* bias, const T* pi, const T* pf,
                        const T* po, T* Y, T* Hfinal, T* Cs, T* Z, T* HP, T* CP, T* CS, T* Gates, T* Msave, T* Mbuf,
                        int64_t B, int64_t H, int64_t P) {
  const int64_t GH = pk.N, G = GH / H, NR = Panels<float>::NR, U = H / NR, UP = P / NR;
  StepBuffers<T> hbuf(B, P, h0);
#pragma omp parallel num_threads(nt)
  {
    const auto [up0, up1, j0, j1] = thread_share(U, nt);   // own units
    const auto [pp0, pp1, q0, q1] = thread_share(UP, nt);  // own h columns
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      const T* hcur = hbuf.at(s);
      T* hnext = hbuf.at(s + 1);
      T* M = Msave ? Msave + r0 * H : Mbuf;
      if (HP) copy_cols(hcur, HP + r0 * P, n, P, q0, q1);
      for (int64_t g = 0; g < G; ++g) pk.run(g * U + up0, g * U + up1, n, hcur, P, Z, GH, false);
      prefetch_cols(X + r0 * GH, G, H, j0, j1);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        if (r + 1 < n) prefetch_cols(X + (row + 1) * GH, G, H, j0, j1);
        fwd_row<T>(fl, L, H, j0, j1, X + row * GH, Z + r * GH, bias, pi, pf, po, Cs + r * H,
                   CP ? CP + row * H : nullptr, CS ? CS + row * H : nullptr, Gates ? Gates + row * GH : nullptr,
                   M + r * H);
      }
#pragma omp barrier
      pr.run(pp0, pp1, n, M, H, Y + r0 * P, P, false);  // h_t = m W_hrᵀ, this thread's columns
      copy_cols(Y + r0 * P, hnext, n, P, q0, q1);
      copy_cols(hcur + n * P, hnext + n * P, B - n, P, q0, q1);
#pragma omp barrier
    }
  }
  std::copy(hbuf.at(st.T), hbuf.at(st.T) + B * P, Hfinal);
}

template <typename T, typename Fl>
void backward_split_proj(const Fl& fl, const Layout<Fl>& L, const Steps& st, int64_t nt, const Panels<T>& pk,
                         const Panels<T>& pr, const T* GY, const T* G, const T* CS, const T* CP, const T* pi,
                         const T* pf, const T* po, T* DH, T* DC, T* DZ, T* DHALL, T* DM, int64_t H, int64_t P) {
  const int64_t GH = pk.K, NR = Panels<float>::NR, U = H / NR, UP = P / NR;
#pragma omp parallel num_threads(nt)
  {
    const auto [up0, up1, j0, j1] = thread_share(U, nt);
    const auto [pp0, pp1, q0, q1] = thread_share(UP, nt);
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      T* dha = DHALL + r0 * P;
      for (int64_t r = 0; r < n; ++r)  // ∂L/∂h_t, this thread's columns
        for (int64_t q = q0; q < q1; ++q) dha[r * P + q] = GY[(r0 + r) * P + q] + DH[r * P + q];
#pragma omp barrier
      pr.run(up0, up1, n, dha, P, DM, H, false);  // ∂L/∂m = ∂L/∂h W_hr, this thread's units
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        if (r + 1 < n) prefetch_row_bwd(G, CS, CP, GH, H, row + 1, j0, j1);
        bwd_row<T>(fl, L, H, DM + r * H, nullptr, DC + r * H, G + row * GH, CS + row * H, CP + row * H, pi, pf, po,
                   DZ + row * GH, j0, j1);
      }
#pragma omp barrier
      pk.run(pp0, pp1, n, DZ + r0 * GH, GH, DH, P, false);  // ∂L/∂h_{t-1} = dz W_hh, this thread's columns
    }
  }
}

}  // namespace lstm
}  // namespace lstmkit
