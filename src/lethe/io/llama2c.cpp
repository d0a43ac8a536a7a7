#include "lethe/io/llama2c.h"

#include <ATen/ATen.h>

#include <cstring>

#include "lethe/core/error.h"
#include "lethe/core/file.h"

namespace lethe::io {

at::Tensor permute_rotary_rows(const at::Tensor& w, std::int64_t heads) {
  const std::int64_t rows = w.size(0), in = w.size(1);
  const std::int64_t d = rows / heads;
  // Row (h, i, pair) -> (h, pair, i): evens first, then odds, within each head.
  return w.view({heads, d / 2, 2, in}).transpose(1, 2).reshape({rows, in});
}

Llama2cCheckpoint read_llama2c(const std::filesystem::path& path) {
  MappedFile file(path);
  const std::string src = path.string();
  LETHE_CHECK(file.size() >= 28, src, ": ", file.size(),
              " bytes is too small for a llama2.c checkpoint (28-byte header)");
  std::int32_t h[7];
  std::memcpy(h, file.data(), sizeof(h));
  Llama2cCheckpoint ck;
  Llama2cHeader& hd = ck.header;
  hd.dim = h[0];
  hd.hidden_dim = h[1];
  hd.n_layers = h[2];
  hd.n_heads = h[3];
  hd.n_kv_heads = h[4];
  hd.shared_classifier = h[5] > 0;
  hd.vocab_size = h[5] < 0 ? -static_cast<std::int64_t>(h[5]) : h[5];
  hd.seq_len = h[6];
  LETHE_CHECK(hd.dim > 0 && hd.hidden_dim > 0 && hd.n_layers > 0 && hd.n_heads > 0 &&
                  hd.n_kv_heads > 0 && hd.vocab_size > 0 && hd.seq_len > 0,
              src, ": header (dim ", hd.dim, ", hidden_dim ", hd.hidden_dim, ", n_layers ",
              hd.n_layers, ", n_heads ", hd.n_heads, ", n_kv_heads ", hd.n_kv_heads,
              ", vocab_size ", h[5], ", seq_len ", hd.seq_len,
              ") has non-positive values — not a llama2.c v0 checkpoint?");
  LETHE_CHECK(hd.dim % hd.n_heads == 0 && hd.n_heads % hd.n_kv_heads == 0 &&
                  (hd.dim / hd.n_heads) % 2 == 0,
              src, ": n_heads (", hd.n_heads, ") must divide dim (", hd.dim,
              ") into even head sizes, and n_kv_heads (", hd.n_kv_heads, ") must divide n_heads");
  LETHE_CHECK(hd.dim <= (1 << 16) && hd.hidden_dim <= (1 << 18) && hd.n_layers <= 1024 &&
                  hd.vocab_size <= (1 << 22) && hd.seq_len <= (1 << 22),
              src, ": header values are implausibly large — not a llama2.c v0 checkpoint?");

  const std::int64_t dim = hd.dim, hid = hd.hidden_dim, L = hd.n_layers, V = hd.vocab_size;
  const std::int64_t head = dim / hd.n_heads, kv_dim = head * hd.n_kv_heads;
  const std::int64_t floats = V * dim + L * dim + L * dim * dim + 2 * L * dim * kv_dim +
                              L * dim * dim + L * dim + 3 * L * dim * hid + dim +
                              hd.seq_len * head + (hd.shared_classifier ? 0 : V * dim);
  const std::uint64_t expected = 28 + static_cast<std::uint64_t>(floats) * 4;
  LETHE_CHECK(file.size() == expected, src, ": file has ", file.size(), " bytes but its header (",
              "dim ", dim, ", hidden_dim ", hid, ", n_layers ", L, ", n_heads ", hd.n_heads,
              ", n_kv_heads ", hd.n_kv_heads, ", vocab_size ", h[5], ", seq_len ", hd.seq_len,
              ") needs ", expected, " — truncated, or not the v0 format");

  const std::uint8_t* p = file.data() + 28;
  auto take = [&](std::vector<std::int64_t> shape) {
    at::Tensor t = at::empty(shape, at::kFloat);
    const std::size_t bytes = static_cast<std::size_t>(t.numel()) * 4;
    std::memcpy(t.data_ptr<float>(), p, bytes);
    p += bytes;
    return t;
  };
  at::Tensor emb = take({V, dim});
  at::Tensor rms_att = take({L, dim});
  at::Tensor wq = take({L, dim, dim});
  at::Tensor wk = take({L, kv_dim, dim});
  at::Tensor wv = take({L, kv_dim, dim});
  at::Tensor wo = take({L, dim, dim});
  at::Tensor rms_ffn = take({L, dim});
  at::Tensor w1 = take({L, hid, dim});
  at::Tensor w2 = take({L, dim, hid});
  at::Tensor w3 = take({L, hid, dim});
  at::Tensor rms_final = take({dim});
  p += static_cast<std::size_t>(hd.seq_len * head) * 4;  // legacy freq_cis_real / imag
  at::Tensor wcls = hd.shared_classifier ? at::Tensor() : take({V, dim});

  auto& out = ck.tensors;
  out.emplace_back("model.embed_tokens.weight", emb);
  for (std::int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    out.emplace_back(pre + "input_layernorm.weight", rms_att[l]);
    out.emplace_back(pre + "self_attn.q_proj.weight", permute_rotary_rows(wq[l], hd.n_heads));
    out.emplace_back(pre + "self_attn.k_proj.weight", permute_rotary_rows(wk[l], hd.n_kv_heads));
    out.emplace_back(pre + "self_attn.v_proj.weight", wv[l]);
    out.emplace_back(pre + "self_attn.o_proj.weight", wo[l]);
    out.emplace_back(pre + "post_attention_layernorm.weight", rms_ffn[l]);
    out.emplace_back(pre + "mlp.gate_proj.weight", w1[l]);
    out.emplace_back(pre + "mlp.down_proj.weight", w2[l]);
    out.emplace_back(pre + "mlp.up_proj.weight", w3[l]);
  }
  out.emplace_back("model.norm.weight", rms_final);
  if (wcls.defined()) out.emplace_back("lm_head.weight", wcls);
  return ck;
}

}  // namespace lethe::io
