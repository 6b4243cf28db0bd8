// Model files to runnable layers: the architecture JSON names each layer, its weights are the
// file's tensors "<layer name>.<index>" in Keras's layout, converted here once to the kernels'
// (PyTorch's) layout. Every layer runs the code Python's runs (the recurrent kernels,
// rnncore/row_ops.h for Dense, Conv1D, LayerNormalization and the activations): the same bits.
#include "model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>

#include "errors.h"
#include "json.h"
#include "model_file.h"
#include "rnncore/layer.h"
#include "rnncore/row_ops.h"
#include "rnncore/stream_state.h"

namespace rnncore::capi {

namespace {

constexpr int64_t kMaxUnits = int64_t(1) << 24;
constexpr const char* kFormat = "rnncore.sequential/1";

[[noreturn]] void unsupported(const std::string& what) {
  fail(RNNCORE_ERROR_UNSUPPORTED, what);
}

// ---- reading the architecture ----

// The layer configs' fields, with errors naming the layer and the field.
struct Config {
  const json::Value& v;
  std::string layer;

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail(RNNCORE_ERROR_FILE, "layer '" + layer + "': " + key + ": " + what);
  }
  const json::Value* get(const std::string& key) const { return v.find(key); }
  int64_t units(const std::string& key) const {
    int64_t n = 0;
    const json::Value* f = get(key);
    if (!f || !f->as_int(1, kMaxUnits, &n)) bad(key, "expected a positive int");
    return n;
  }
  bool flag(const std::string& key, bool fallback) const {
    const json::Value* f = get(key);
    if (!f || f->kind == json::Value::Kind::Null) return fallback;
    if (f->kind != json::Value::Kind::Bool) bad(key, "expected true or false");
    return f->boolean;
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    const json::Value* f = get(key);
    if (!f || f->kind == json::Value::Kind::Null) return fallback;
    if (!f->is_string()) bad(key, "expected a string");
    return f->text;
  }
};

// The file's tensors, handed out once each by name and checked against the expected shape.
class Weights {
 public:
  explicit Weights(ModelFile& file) : file_(file) {}
  std::vector<float> take(const std::string& name, std::vector<int64_t> shape) {
    auto it = file_.tensors.find(name);
    if (it == file_.tensors.end()) fail(RNNCORE_ERROR_FILE, "missing weight '" + name + "'");
    if (it->second.shape != shape)
      fail(RNNCORE_ERROR_FILE, "weight '" + name + "' has the wrong shape for its layer");
    taken_.insert(name);
    return std::move(it->second.data);
  }
  void check_all_taken() const {
    for (const auto& [name, t] : file_.tensors)
      if (!taken_.count(name))
        fail(RNNCORE_ERROR_FILE, "weight '" + name + "' belongs to no layer");
  }

 private:
  ModelFile& file_;
  std::set<std::string> taken_;
};

// ---- activations and dense products (rnncore/row_ops.h: the code Python's layers run) ----

Activation to_act(const Config& c, const std::string& key) {
  static const std::map<std::string, Activation> names = {
      {"linear", Activation::Linear},   {"relu", Activation::Relu},
      {"tanh", Activation::Tanh},       {"sigmoid", Activation::Sigmoid},
      {"softmax", Activation::Softmax}, {"softplus", Activation::Softplus},
      {"elu", Activation::Elu}};
  const std::string name = c.text(key, "linear");
  auto it = names.find(name);
  if (it == names.end()) unsupported("layer '" + c.layer + "': activation '" + name + "'");
  return it->second;
}

// y [rows, N] = act(x [rows, K] · kernel + bias), kernel [K, N] in Keras's layout, packed once
// for the kernels' GEMM: what Python's Dense and Conv1D compute, with the same calls.
class DenseProduct {
 public:
  DenseProduct(const std::vector<float>& kernel, std::vector<float> bias, int64_t K, int64_t N,
               Activation act)
      : K_(K), N_(N), act_(act), bias_(std::move(bias)) {
    std::vector<float> w(size_t(K * N));  // [N, K]: the orientation pack_weights reads
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) w[size_t(n * K + k)] = kernel[size_t(k * N + n)];
    packed_.resize(size_t(packed_weight_elems<float>(N, K)));
    pack_weights<float>(w.data(), N, K, packed_.data());
  }
  void apply(const float* x, int64_t rows, float* y) const {
    dense_forward<float>(rows, K_, N_, x, packed_.data(), bias_.empty() ? nullptr : bias_.data(),
                         y);
    apply_activation<float>(act_, y, rows, N_);
  }

 private:
  int64_t K_, N_;
  Activation act_;
  std::vector<float> bias_;    // [N] or empty
  std::vector<float> packed_;  // kernel packed by pack_weights
};

// A layer that maps each row on its own (Dense, Embedding, LayerNormalization) stepped for
// B rows: its apply(x, rows, y) on one step's rows.
template <typename RowLayer>
class RowsStep : public StepLayer {
 public:
  RowsStep(const RowLayer& layer, int64_t B, int64_t out) : layer_(layer), B_(B) {
    out_features = out;
  }
  void step(const float* x, float* y) override { layer_.apply(x, B_, y); }

 private:
  const RowLayer& layer_;  // alive as long as the stream: it holds its model
  int64_t B_;
};

// ---- Dense (and TimeDistributed(Dense)) ----

class Dense : public Layer {
 public:
  Dense(const Config& c, const std::string& weights_name, int64_t in, Weights& w)
      : units_(c.units("units")),
        product_(
            w.take(weights_name + ".0", {in, units_}),  // [in, units]
            c.flag("use_bias", true) ? w.take(weights_name + ".1", {units_}) : std::vector<float>{},
            in, units_, to_act(c, "activation")) {}
  SampleShape output(const SampleShape& in) const override {
    SampleShape out = in;
    out.features = units_;
    return out;
  }
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask&,
               float* y) const override {
    apply(x, B * (in.sequence ? in.steps : 1), y);
  }
  // y [rows, units] = act(x [rows, in] · kernel + bias)
  void apply(const float* x, int64_t rows, float* y) const { product_.apply(x, rows, y); }
  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t) const override;

 private:
  int64_t units_;
  DenseProduct product_;
};

// ---- recurrent layers ----

class Recurrent : public Layer {
 public:
  Recurrent(const Config& c, const std::string& class_name, const std::string& weights_name,
            int first_index, int64_t in, Weights& w)
      : I_(in), H_(c.units("units")) {
    cell_ = cell_of(c, class_name);
    return_sequences_ = c.flag("return_sequences", false);
    go_backwards_ = c.flag("go_backwards", false);
    zero_output_ = c.flag("zero_output_for_mask", false);
    if (c.flag("return_state", false)) unsupported("layer '" + c.layer + "': return_state");
    const int64_t G = gate_count(cell_), GH = G * H_;
    const auto n = [&](int i) { return weights_name + "." + std::to_string(first_index + i); };
    w_ih_ = torch_layout(w.take(n(0), {I_, GH}), I_);
    w_hh_ = torch_layout(w.take(n(1), {H_, GH}), H_);
    if (c.flag("use_bias", true)) {
      if (cell_ == Cell::Gru) {
        std::vector<float> both = w.take(n(2), {2, GH});
        b_ih_ = keras_to_torch_cols(both.data(), 1);
        b_hh_ = keras_to_torch_cols(both.data() + GH, 1);
      } else {
        b_ih_ = keras_to_torch_cols(w.take(n(2), {GH}).data(), 1);
      }
    }
    weight_count_ = c.flag("use_bias", true) ? 3 : 2;
  }

  int weight_count() const { return weight_count_; }
  int64_t units() const { return H_; }
  bool return_sequences() const { return return_sequences_; }

  SampleShape output(const SampleShape& in) const override {
    if (!in.sequence) fail(RNNCORE_ERROR_FILE, name + ": expects (steps, features) input");
    if (in.features != I_)
      fail(RNNCORE_ERROR_FILE, name + ": expects " + std::to_string(I_) + " features");
    return return_sequences_ ? SampleShape{in.steps, H_, true} : SampleShape{0, H_, false};
  }

  // The kernels over x [B, T, I] (rows of `lengths` real steps, or all T): y [B, T, H] in
  // time order.
  void run(const float* x, int64_t B, int64_t T, const int64_t* lengths, float* y,
           bool reverse) const {
    Dims d;
    d.T = T;
    d.B = B;
    d.I = I_;
    d.H = H_;
    d.batch_first = true;
    d.reverse = reverse;
    ForwardArgs<float> a;
    a.x = x;
    a.lengths = lengths;
    a.w_ih = w_ih_.data();
    a.w_hh = w_hh_.data();
    a.b_ih = b_ih_.empty() ? nullptr : b_ih_.data();
    a.b_hh = b_hh_.empty() ? nullptr : b_hh_.data();
    a.y = y;
    std::vector<float> h_n(size_t(B * H_)), c_n(cell_ == Cell::Lstm ? h_n.size() : 0);
    a.h_n = h_n.data();  // the kernels always write the final states
    a.c_n = c_n.empty() ? nullptr : c_n.data();
    layer_forward<float>(cell_, d, a);
  }

  // The outputs [B, T, H] in processing order (reversed time for go_backwards), as Keras
  // gives them. Masked steps are skipped (the state carries over): each row's real steps are
  // gathered to the front and run with lengths, then scattered back; a masked position shows
  // the last real output before it, or zeros (zero_output_for_mask, or none yet).
  void sequence(const float* x, int64_t B, int64_t T, const Mask& mask, float* seq) const {
    const bool all_real =
        mask.empty() || std::all_of(mask.begin(), mask.end(), [](uint8_t m) { return m != 0; });
    if (all_real) {
      std::vector<float> y(size_t(B * T * H_));  // [B, T, H] in time order
      run(x, B, T, nullptr, y.data(), go_backwards_);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
          std::copy_n(y.data() + (b * T + (go_backwards_ ? T - 1 - t : t)) * H_, H_,
                      seq + (b * T + t) * H_);
      return;
    }
    std::vector<float> xc(size_t(B * T * I_), 0.0f), yc(size_t(B * T * H_));  // compact
    std::vector<int64_t> lengths(size_t(B), 0);
    auto real = [&](int64_t b, int64_t t) {  // step t in processing order
      return mask[size_t(b * T + (go_backwards_ ? T - 1 - t : t))] != 0;
    };
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        if (real(b, t))
          std::copy_n(x + (b * T + (go_backwards_ ? T - 1 - t : t)) * I_, I_,
                      xc.data() + (b * T + lengths[b]++) * I_);
    run(xc.data(), B, T, lengths.data(), yc.data(), false);
    for (int64_t b = 0; b < B; ++b) {
      int64_t shown = -1;  // the compact step each position shows
      for (int64_t t = 0; t < T; ++t) {
        shown += real(b, t) ? 1 : 0;
        float* out = seq + (b * T + t) * H_;
        if (shown >= 0 && (real(b, t) || !zero_output_)) {
          std::copy_n(yc.data() + (b * T + shown) * H_, H_, out);
        } else {
          std::fill(out, out + H_, 0.0f);
        }
      }
    }
  }

  void forward(const float* x, int64_t B, const SampleShape& in, const Mask& mask,
               float* y) const override {
    const int64_t T = in.steps;
    if (return_sequences_) return sequence(x, B, T, mask, y);
    std::vector<float> seq(size_t(B * T * H_));
    sequence(x, B, T, mask, seq.data());
    for (int64_t b = 0; b < B; ++b)  // the last position
      std::copy_n(seq.data() + (b * T + T - 1) * H_, H_, y + b * H_);
  }

  Mask mask_out(const float*, int64_t, const SampleShape&, const Mask& mask) const override {
    return return_sequences_ ? mask : Mask();
  }

  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const override;

  Cell cell_ = Cell::Lstm;
  int64_t I_, H_;
  bool return_sequences_ = false, go_backwards_ = false, zero_output_ = false;
  int weight_count_ = 3;
  std::vector<float> w_ih_, w_hh_, b_ih_, b_hh_;  // [G*H, I], [G*H, H], [G*H] (torch layout)

 private:
  static Cell cell_of(const Config& c, const std::string& class_name) {
    if (class_name == "SimpleRNN") {
      const std::string act = c.text("activation", "tanh");
      if (act == "tanh") return Cell::RnnTanh;
      if (act == "relu") return Cell::RnnRelu;
      unsupported("layer '" + c.layer + "': SimpleRNN activation '" + act + "'");
    }
    if (c.text("activation", "tanh") != "tanh" ||
        c.text("recurrent_activation", "sigmoid") != "sigmoid")
      unsupported("layer '" + c.layer + "': activations other than tanh and sigmoid");
    if (class_name == "LSTM") return Cell::Lstm;
    return c.flag("reset_after", true) ? Cell::Gru : Cell::GruResetBefore;
  }

  // Keras's [rows, G*H] (gate blocks in Keras's order) as the kernels' [G*H, rows].
  std::vector<float> torch_layout(const std::vector<float>& keras, int64_t rows) const {
    const std::vector<float> cols = keras_to_torch_cols(keras.data(), rows);
    const int64_t GH = gate_count(cell_) * H_;
    std::vector<float> out(size_t(GH * rows));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < GH; ++j) out[j * rows + r] = cols[r * GH + j];
    return out;
  }

  // Gate blocks reordered along the last axis of [rows, G*H]: GRU's z,r,h become r,z,n.
  std::vector<float> keras_to_torch_cols(const float* a, int64_t rows) const {
    const int64_t G = gate_count(cell_), GH = G * H_;
    std::vector<float> out(a, a + rows * GH);
    if (cell_ != Cell::Gru && cell_ != Cell::GruResetBefore) return out;
    for (int64_t r = 0; r < rows; ++r)  // swap the first two blocks (a self-inverse order)
      std::swap_ranges(out.begin() + r * GH, out.begin() + r * GH + H_, out.begin() + r * GH + H_);
    return out;
  }
};

// Streaming one recurrent layer: its own packed weights and state; nothing allocated per step.
class RecurrentStep : public StepLayer {
 public:
  RecurrentStep(const Recurrent& r, int64_t B)
      : state_(r.cell_, B, r.I_, r.H_, r.w_ih_.data(), r.w_hh_.data(),
               r.b_ih_.empty() ? nullptr : r.b_ih_.data(),
               r.b_hh_.empty() ? nullptr : r.b_hh_.data()) {
    out_features = r.H_;
  }
  void step(const float* x, float* y) override {
    state_.step(x);
    std::copy(state_.h().begin(), state_.h().end(), y);
  }
  void reset() override { state_.reset(); }

 private:
  StreamState<float> state_;
};

std::unique_ptr<StepLayer> Recurrent::stepper(int64_t B, int64_t) const {
  if (go_backwards_) unsupported(name + ": go_backwards runs the sequence from its end");
  return std::make_unique<RecurrentStep>(*this, B);
}

std::unique_ptr<StepLayer> Dense::stepper(int64_t B, int64_t) const {
  return std::make_unique<RowsStep<Dense>>(*this, B, units_);
}

class Bidirectional : public Layer {
 public:
  Bidirectional(const Config& c, int64_t in, Weights& w) {
    merge_ = c.text("merge_mode", "concat");
    if (merge_ != "concat" && merge_ != "sum" && merge_ != "mul" && merge_ != "ave")
      unsupported("layer '" + c.layer + "': merge_mode '" + merge_ + "'");
    fwd_ = inner(c, "layer", 0, in, w);
    bwd_ = inner(c, "backward_layer", fwd_->weight_count(), in, w);
    if (bwd_->units() != fwd_->units() || bwd_->return_sequences() != fwd_->return_sequences())
      unsupported("layer '" + c.layer + "': directions of different shapes");
  }
  SampleShape output(const SampleShape& in) const override {
    SampleShape out = fwd_->output(in);
    if (merge_ == "concat") out.features *= 2;
    return out;
  }
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask& mask,
               float* y) const override {
    const int64_t T = in.steps, H = fwd_->units();
    std::vector<float> yf(size_t(B * T * H)), yb(yf.size());  // [B, T, H] processing order
    fwd_->sequence(x, B, T, mask, yf.data());
    bwd_->sequence(x, B, T, mask, yb.data());
    const bool seq = fwd_->return_sequences();
    std::vector<float> a(size_t(B * (seq ? T : 1) * H)), b(a.size());  // what merges
    for (int64_t r = 0; r < B; ++r)
      for (int64_t t = seq ? 0 : T - 1; t < T; ++t) {
        const int64_t at = seq ? r * T + t : r;  // the backward outputs back in time order
        std::copy_n(yf.data() + (r * T + t) * H, H, a.data() + at * H);
        std::copy_n(yb.data() + (r * T + (seq ? T - 1 - t : t)) * H, H, b.data() + at * H);
      }
    merge(a.data(), b.data(), seq ? B * T : B, H, y);
  }

  Mask mask_out(const float*, int64_t, const SampleShape&, const Mask& mask) const override {
    return fwd_->return_sequences() ? mask : Mask();
  }

 private:
  static std::unique_ptr<Recurrent> inner(const Config& c, const char* key, int first, int64_t in,
                                          Weights& w) {
    const json::Value* spec = c.get(key);
    const json::Value* kind = spec ? spec->find("class_name") : nullptr;
    const json::Value* cfg = spec ? spec->find("config") : nullptr;
    if (!kind || !kind->is_string() || !cfg || !cfg->is_object()) c.bad(key, "expected a layer");
    if (kind->text != "SimpleRNN" && kind->text != "LSTM" && kind->text != "GRU")
      unsupported("layer '" + c.layer + "': Bidirectional(" + kind->text + ")");
    auto r = std::make_unique<Recurrent>(Config{*cfg, c.layer}, kind->text, c.layer, first, in, w);
    r->name = c.layer;
    return r;
  }
  // y [rows, H or 2H] from the two directions' [rows, H].
  void merge(const float* a, const float* b, int64_t rows, int64_t H, float* y) const {
    for (int64_t r = 0; r < rows; ++r) {
      const float *ar = a + r * H, *br = b + r * H;
      if (merge_ == "concat") {
        std::copy_n(ar, H, y + r * 2 * H);
        std::copy_n(br, H, y + r * 2 * H + H);
        continue;
      }
      float* out = y + r * H;
      for (int64_t j = 0; j < H; ++j)
        out[j] = merge_ == "sum"   ? ar[j] + br[j]
                 : merge_ == "mul" ? ar[j] * br[j]
                                   : (ar[j] + br[j]) / 2.0f;
    }
  }

  std::string merge_;
  std::unique_ptr<Recurrent> fwd_, bwd_;
};

// Dropout (inference: the identity) and Flatten.
class Reshape : public Layer {
 public:
  explicit Reshape(bool flatten) : flatten_(flatten) {}
  SampleShape output(const SampleShape& in) const override {
    return flatten_ ? SampleShape{0, in.size(), false} : in;
  }
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask&,
               float* y) const override {
    std::copy_n(x, B * in.size(), y);
  }
  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const override;

 private:
  bool flatten_;
};

class Identity : public StepLayer {
 public:
  Identity(int64_t B, int64_t features) : n_(B * features) { out_features = features; }
  void step(const float* x, float* y) override { std::copy_n(x, n_, y); }

 private:
  int64_t n_;
};

std::unique_ptr<StepLayer> Reshape::stepper(int64_t B, int64_t in_features) const {
  if (flatten_) unsupported(name + ": Flatten needs the whole sequence");
  return std::make_unique<Identity>(B, in_features);
}

// Masking: steps whose features all equal mask_value are masked (and zeroed).
class Masking : public Layer {
 public:
  explicit Masking(const Config& c) {
    const json::Value* v = c.get("mask_value");
    if (v && !v->is_number()) c.bad("mask_value", "expected a number");
    value_ = v ? float(v->number) : 0.0f;
  }
  SampleShape output(const SampleShape& in) const override { return in; }
  Mask mask_out(const float* x, int64_t B, const SampleShape& in, const Mask&) const override {
    Mask out(size_t(B * in.steps));
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = std::any_of(x + i * in.features, x + (i + 1) * in.features,
                           [&](float v) { return v != value_; });
    return out;
  }
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask&,
               float* y) const override {
    const Mask keep = mask_out(x, B, in, Mask());
    for (size_t i = 0; i < keep.size(); ++i)
      for (int64_t f = 0; f < in.features; ++f)
        y[i * in.features + f] = x[i * in.features + f] * (keep[i] ? 1.0f : 0.0f);
  }

 private:
  float value_ = 0.0f;
};

// Embedding: each step's one feature is a token id, replaced by its row of the table.
class Embedding : public Layer {
 public:
  Embedding(const Config& c, const std::string& weights_name, Weights& w)
      : input_dim_(c.units("input_dim")), output_dim_(c.units("output_dim")) {
    mask_zero_ = c.flag("mask_zero", false);
    table_ = w.take(weights_name + ".0", {input_dim_, output_dim_});
  }
  SampleShape output(const SampleShape& in) const override {
    if (!in.sequence || in.features != 1)
      fail(RNNCORE_ERROR_FILE, name + ": expects token ids, one per step");
    return SampleShape{in.steps, output_dim_, true};
  }
  Mask mask_out(const float* x, int64_t B, const SampleShape& in, const Mask&) const override {
    if (!mask_zero_) return Mask();
    Mask out(size_t(B * in.steps));
    for (size_t i = 0; i < out.size(); ++i) out[i] = x[i] != 0.0f;
    return out;
  }
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask&,
               float* y) const override {
    apply(x, B * in.steps, y);
  }
  // y [n, output_dim] = the table's rows for the ids x [n] (whole numbers in [0, input_dim)).
  void apply(const float* x, int64_t n, float* y) const {
    for (int64_t i = 0; i < n; ++i) {
      const float id = x[i];
      if (!(id >= 0.0f && id < float(input_dim_) && id == std::floor(id)))
        bad_argument("x: token ids must be whole numbers in [0, " + std::to_string(input_dim_) +
                     "), got " + std::to_string(id) + " at index " + std::to_string(i));
      std::copy_n(table_.data() + int64_t(id) * output_dim_, output_dim_, y + i * output_dim_);
    }
  }
  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const override;

 private:
  int64_t input_dim_, output_dim_;
  bool mask_zero_ = false;
  std::vector<float> table_;  // [input_dim, output_dim]
};

std::unique_ptr<StepLayer> Embedding::stepper(int64_t B, int64_t) const {
  if (mask_zero_) unsupported(name + ": mask_zero masks steps, which a stream cannot skip");
  return std::make_unique<RowsStep<Embedding>>(*this, B, output_dim_);
}

// LayerNormalization over the last axis: gamma * (x - mean) / sqrt(var + epsilon) + beta.
class LayerNorm : public Layer {
 public:
  LayerNorm(const Config& c, const std::string& weights_name, int64_t in, Weights& w) : in_(in) {
    const json::Value* eps = c.get("epsilon");
    if (eps && (!eps->is_number() || !(eps->number > 0))) c.bad("epsilon", "expected > 0");
    epsilon_ = eps ? float(eps->number) : 1e-3f;
    int next = 0;
    if (c.flag("scale", true)) gamma_ = w.take(weights_name + "." + std::to_string(next++), {in});
    if (c.flag("center", true)) beta_ = w.take(weights_name + "." + std::to_string(next++), {in});
  }
  SampleShape output(const SampleShape& in) const override { return in; }
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask&,
               float* y) const override {
    apply(x, B * (in.sequence ? in.steps : 1), y);
  }
  void apply(const float* x, int64_t rows, float* y) const {
    layer_norm_rows<float>(x, rows, in_, gamma_.empty() ? nullptr : gamma_.data(),
                           beta_.empty() ? nullptr : beta_.data(), epsilon_, y);
  }
  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const override;

 private:
  int64_t in_;
  float epsilon_ = 1e-3f;
  std::vector<float> gamma_, beta_;  // [in] each, or empty
};

std::unique_ptr<StepLayer> LayerNorm::stepper(int64_t B, int64_t in_features) const {
  return std::make_unique<RowsStep<LayerNorm>>(*this, B, in_features);
}

// Conv1D over the time axis, with Keras's padding modes ("valid", "causal", "same"), strides
// and dilation; kernel [k, channels, filters].
class Conv1D : public Layer {
 public:
  Conv1D(const Config& c, const std::string& weights_name, int64_t channels, Weights& w)
      : C_(channels),
        F_(c.units("filters")),
        K_(single(c, "kernel_size")),
        stride_(single(c, "strides")),
        dilation_(single(c, "dilation_rate")),
        padding_(c.text("padding", "valid")),
        product_(
            w.take(weights_name + ".0", {K_, C_, F_}),  // [k, C, F]: a [k*C, F] product
            c.flag("use_bias", true) ? w.take(weights_name + ".1", {F_}) : std::vector<float>{},
            K_ * C_, F_, to_act(c, "activation")) {
    if (padding_ != "valid" && padding_ != "causal" && padding_ != "same")
      c.bad("padding", "expected valid, causal or same");
  }
  SampleShape output(const SampleShape& in) const override {
    if (!in.sequence || in.features != C_)
      fail(RNNCORE_ERROR_FILE, name + ": expects (steps, " + std::to_string(C_) + ") input");
    const int64_t out = geometry(in.steps)[2];
    if (out < 1)
      bad_argument(name + ": an input of " + std::to_string(in.steps) +
                   " steps is shorter than the kernel's span");
    return SampleShape{out, F_, true};
  }
  // Every output step's taps gathered into a row of patches [B*out, k*C] (zeros where the
  // padding is), then one product: the gather and the product Python's Conv1D does.
  void forward(const float* x, int64_t B, const SampleShape& in, const Mask&,
               float* y) const override {
    const int64_t T = in.steps;
    const auto [left, right, out] = geometry(T);
    (void)right;
    std::vector<float> patches(size_t(B * out * K_ * C_), 0.0f);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < out; ++t)
        for (int64_t k = 0; k < K_; ++k) {
          const int64_t src = t * stride_ + k * dilation_ - left;  // the padded input's step
          if (src >= 0 && src < T)
            std::copy_n(x + (b * T + src) * C_, C_, patches.data() + ((b * out + t) * K_ + k) * C_);
        }
    product_.apply(patches.data(), B * out, y);
  }
  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const override;

  int64_t C_, F_, K_, stride_, dilation_;

 private:
  static int64_t single(const Config& c, const std::string& key) {  // an int or [int]
    const json::Value* v = c.get(key);
    int64_t n = 0;
    if (v && v->is_array() && v->items.size() == 1) v = &v->items[0];
    if (!v || !v->as_int(1, kMaxUnits, &n)) c.bad(key, "expected a positive int");
    return n;
  }
  // {left pad, right pad, output steps} for T input steps, as Keras computes them.
  std::array<int64_t, 3> geometry(int64_t T) const {
    const int64_t span = (K_ - 1) * dilation_ + 1;
    if (padding_ == "valid") return {0, 0, T >= span ? (T - span) / stride_ + 1 : 0};
    if (padding_ == "causal") return {span - 1, 0, (T - 1) / stride_ + 1};
    const int64_t out = (T + stride_ - 1) / stride_;
    const int64_t total = std::max<int64_t>(0, (out - 1) * stride_ + span - T);
    return {total / 2, total - total / 2, out};
  }

  std::string padding_;

 public:
  DenseProduct product_;  // patches [rows, k*C] -> [rows, F]
};

// A causal Conv1D step by step: the last span inputs kept in a ring, nothing allocated.
class Conv1DStep : public StepLayer {
 public:
  Conv1DStep(const Conv1D& conv, int64_t B)
      : conv_(conv), B_(B), span_((conv.K_ - 1) * conv.dilation_ + 1) {
    out_features = conv.F_;
    history_.assign(size_t(B * span_ * conv.C_), 0.0f);
    patches_.resize(size_t(B * conv.K_ * conv.C_));
  }
  void step(const float* x, float* y) override {
    const int64_t C = conv_.C_, KC = conv_.K_ * C;
    newest_ = (newest_ + 1) % span_;
    for (int64_t b = 0; b < B_; ++b)
      std::copy_n(x + b * C, C, history_.data() + (b * span_ + newest_) * C);
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t k = 0; k < conv_.K_; ++k) {  // tap k reads the input span-1-k*d steps ago
        const int64_t back = span_ - 1 - k * conv_.dilation_;
        const int64_t slot = ((newest_ - back) % span_ + span_) % span_;
        std::copy_n(history_.data() + (b * span_ + slot) * C, C, patches_.data() + b * KC + k * C);
      }
    conv_.product_.apply(patches_.data(), B_, y);
  }
  void reset() override {
    std::fill(history_.begin(), history_.end(), 0.0f);
    newest_ = 0;
  }

 private:
  const Conv1D& conv_;  // alive as long as the stream: it holds its model
  int64_t B_, span_, newest_ = 0;
  std::vector<float> history_;  // [B, span, C]: the last span inputs, a ring
  std::vector<float> patches_;  // [B, k*C]: this step's taps, as Conv1D::forward gathers them
};

std::unique_ptr<StepLayer> Conv1D::stepper(int64_t B, int64_t) const {
  if (padding_ != "causal" || stride_ != 1)
    unsupported(name + ": only a causal Conv1D with strides 1 runs step by step");
  return std::make_unique<Conv1DStep>(*this, B);
}

std::unique_ptr<Layer> make_layer(const json::Value& spec, SampleShape in, Weights& w) {
  const json::Value* kind = spec.find("class_name");
  const json::Value* cfg = spec.find("config");
  if (!kind || !kind->is_string() || !cfg || !cfg->is_object())
    fail(RNNCORE_ERROR_FILE, "architecture: every layer needs class_name and config");
  const json::Value* name_v = cfg->find("name");
  if (!name_v || !name_v->is_string())
    fail(RNNCORE_ERROR_FILE, "architecture: a " + kind->text + " layer has no name");
  const std::string& k = kind->text;
  const std::string& name = name_v->text;
  const Config c{*cfg, name};
  std::unique_ptr<Layer> layer;
  if (k == "SimpleRNN" || k == "LSTM" || k == "GRU") {
    if (!in.sequence) fail(RNNCORE_ERROR_FILE, name + ": expects (steps, features) input");
    layer = std::make_unique<Recurrent>(c, k, name, 0, in.features, w);
  } else if (k == "Bidirectional") {
    if (!in.sequence) fail(RNNCORE_ERROR_FILE, name + ": expects (steps, features) input");
    layer = std::make_unique<Bidirectional>(c, in.features, w);
  } else if (k == "Dense") {
    layer = std::make_unique<Dense>(c, name, in.features, w);
  } else if (k == "TimeDistributed") {
    const json::Value* inner = cfg->find("layer");
    const json::Value* inner_kind = inner ? inner->find("class_name") : nullptr;
    const json::Value* inner_cfg = inner ? inner->find("config") : nullptr;
    if (!inner_kind || !inner_kind->is_string() || inner_kind->text != "Dense" || !inner_cfg ||
        !inner_cfg->is_object())
      unsupported("layer '" + name + "': TimeDistributed of anything but Dense");
    layer = std::make_unique<Dense>(Config{*inner_cfg, name}, name, in.features, w);
  } else if (k == "Dropout" || k == "Flatten") {
    layer = std::make_unique<Reshape>(k == "Flatten");
  } else if (k == "Masking") {
    if (!in.sequence) fail(RNNCORE_ERROR_FILE, name + ": expects (steps, features) input");
    layer = std::make_unique<Masking>(c);
  } else if (k == "Embedding") {
    layer = std::make_unique<Embedding>(c, name, w);
  } else if (k == "LayerNormalization") {
    layer = std::make_unique<LayerNorm>(c, name, in.features, w);
  } else if (k == "Conv1D") {
    layer = std::make_unique<Conv1D>(c, name, in.features, w);
  } else {
    unsupported("layer '" + name + "': the C runtime has no " + k +
                " layer (it runs SimpleRNN, LSTM, GRU, Bidirectional, Dense, "
                "TimeDistributed(Dense), Dropout, Embedding, Masking, Conv1D, "
                "LayerNormalization, Flatten)");
  }
  layer->name = name;
  layer->kind = k;
  // Keras's supports_masking: these pass an incoming mask on unchanged.
  layer->passes_mask =
      k == "Dense" || k == "TimeDistributed" || k == "Dropout" || k == "LayerNormalization";
  return layer;
}

}  // namespace

Mask Layer::mask_out(const float*, int64_t, const SampleShape&, const Mask& mask) const {
  return passes_mask ? mask : Mask();
}

std::unique_ptr<StepLayer> Layer::stepper(int64_t, int64_t) const {
  unsupported(name + ": " + kind + " cannot run step by step");
}

std::unique_ptr<Model> Model::load(const std::string& path) {
  ModelFile file = read_model_file(path);
  auto bad = [&](const std::string& what) { fail(RNNCORE_ERROR_FILE, path + ": " + what); };
  if (file.metadata["format"] != kFormat) bad("not an rnncore model file (format)");
  json::Value arch;
  try {
    arch = json::parse(file.metadata["architecture"]);
  } catch (const std::invalid_argument& e) {
    bad(std::string("architecture: ") + e.what());
  }
  const json::Value* cls = arch.find("class_name");
  const json::Value* cfg = arch.find("config");
  if (cls && cls->is_string() && cls->text == "Model")
    fail(RNNCORE_ERROR_UNSUPPORTED,
         path + ": a functional Model; the C runtime runs Sequential models so far");
  if (!cls || !cls->is_string() || cls->text != "Sequential" || !cfg || !cfg->is_object())
    bad("architecture: expected a Sequential model");
  const json::Value* dtype = cfg->find("dtype");
  if (dtype && dtype->is_string() && dtype->text != "float32")
    fail(RNNCORE_ERROR_UNSUPPORTED, path + ": a " + dtype->text +
                                        " model; the C runtime runs "
                                        "float32 models");
  const json::Value* shape = cfg->find("input_shape");
  if (!shape || !shape->is_array())
    bad("architecture: no input shape (build the model before saving it)");
  const json::Value* layers = cfg->find("layers");
  if (!layers || !layers->is_array() || layers->items.empty())
    bad("architecture: expected a list of layers");
  const json::Value* first = layers->items[0].find("class_name");
  const bool ids = first && first->is_string() && first->text == "Embedding";
  if (shape->items.size() != (ids ? 1u : 2u))  // token ids (steps,), else (steps, features)
    fail(RNNCORE_ERROR_UNSUPPORTED, path +
                                        ": the C runtime takes (steps, features) inputs, "
                                        "or (steps,) token ids into an Embedding");
  auto model = std::make_unique<Model>();
  const json::Value& steps = shape->items[0];
  if (steps.kind != json::Value::Kind::Null && !steps.as_int(1, kMaxUnits, &model->input_steps))
    bad("architecture: invalid input steps");
  model->input_features = 1;  // a token id per step
  if (!ids && !shape->items[1].as_int(1, kMaxUnits, &model->input_features))
    bad("architecture: invalid input features");
  Weights weights(file);
  // Steps only matter to the weights' shapes after a Flatten, which needs them fixed.
  SampleShape s{model->input_steps ? model->input_steps : kMaxUnits, model->input_features, true};
  try {
    for (const json::Value& spec : layers->items) {
      model->layers.push_back(make_layer(spec, s, weights));
      s = model->layers.back()->output(s);
    }
    weights.check_all_taken();
  } catch (const Error& e) {
    fail(e.code, path + ": " + e.what());
  }
  return model;
}

SampleShape Model::output(int64_t steps) const {
  if (steps < 1) bad_argument("steps: expected >= 1, got " + std::to_string(steps));
  if (input_steps && steps != input_steps)
    bad_argument("steps: the model takes " + std::to_string(input_steps) + " steps, got " +
                 std::to_string(steps));
  SampleShape s{steps, input_features, true};
  checked_mul(steps, input_features, "steps * features");
  for (const auto& layer : layers) {
    s = layer->output(s);
    checked_mul(s.sequence ? s.steps : 1, s.features, "output size");
  }
  return s;
}

void Model::predict(const float* x, int64_t B, int64_t steps, float* y) const {
  if (B < 1) bad_argument("batch: expected >= 1, got " + std::to_string(B));
  SampleShape s{steps, input_features, true};
  output(steps);  // checks the sizes
  std::vector<float> in, out;
  Mask mask;  // [B, steps] while a layer has masked steps, else empty
  const float* cur = x;
  for (size_t i = 0; i < layers.size(); ++i) {
    const SampleShape next = layers[i]->output(s);
    const int64_t n = checked_mul(B, next.size(), "batch * output size");
    float* dst = y;
    if (i + 1 < layers.size()) {
      out.resize(size_t(n));
      dst = out.data();
    }
    Mask next_mask = layers[i]->mask_out(cur, B, s, mask);
    layers[i]->forward(cur, B, s, mask, dst);
    mask = next.sequence && next.steps == s.steps ? std::move(next_mask) : Mask();
    std::swap(in, out);
    cur = in.data();
    s = next;
  }
}

Stream::Stream(std::shared_ptr<const Model> model, int64_t B) : batch(B), model_(model) {
  if (B < 1) bad_argument("batch: expected >= 1, got " + std::to_string(B));
  int64_t features = model->input_features;
  for (size_t i = 0; i < model->layers.size(); ++i) {
    layers_.push_back(model->layers[i]->stepper(B, features));
    features = layers_.back()->out_features;
    if (i + 1 < model->layers.size())
      between_.emplace_back(size_t(checked_mul(B, features, "batch * features")));
  }
  out_features = features;
}

void Stream::step(const float* x, float* y) {
  bool expected = false;
  if (!busy_.compare_exchange_strong(expected, true))
    bad_argument("this stream is stepping in another thread; give each thread its own stream");
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false); }
  } release{busy_};
  const float* cur = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    float* dst = i + 1 < layers_.size() ? between_[i].data() : y;
    layers_[i]->step(cur, dst);
    cur = dst;
  }
}

void Stream::reset() {
  for (auto& layer : layers_) layer->reset();
}

}  // namespace rnncore::capi

// ---- the C functions ----

using rnncore::capi::bad_argument;
using rnncore::capi::guarded;

struct rnncore_model {
  std::shared_ptr<const rnncore::capi::Model> impl;  // shared with the model's streams
};

struct rnncore_stream {
  std::unique_ptr<rnncore::capi::Stream> impl;
};

extern "C" {

rnncore_model* rnncore_model_load(const char* path) {
  rnncore_model* out = nullptr;
  guarded("rnncore_model_load", [&] {
    if (!path) bad_argument("path: expected a file name, got NULL");
    auto m = std::make_unique<rnncore_model>();
    m->impl = rnncore::capi::Model::load(path);
    out = m.release();
  });
  return out;
}

void rnncore_model_free(rnncore_model* model) {
  delete model;
}

int64_t rnncore_model_input_features(const rnncore_model* model) {
  return model ? model->impl->input_features : -1;
}

int64_t rnncore_model_input_steps(const rnncore_model* model) {
  return model ? model->impl->input_steps : -1;
}

int64_t rnncore_model_output_size(const rnncore_model* model, int64_t steps) {
  int64_t size = -1;
  guarded("rnncore_model_output_size", [&] {
    if (!model) bad_argument("model: expected a model, got NULL");
    size = model->impl->output(steps).size();
  });
  return size;
}

int rnncore_model_predict(const rnncore_model* model, const float* x, int64_t batch, int64_t steps,
                          float* y) {
  return guarded("rnncore_model_predict", [&] {
    if (!model) bad_argument("model: expected a model, got NULL");
    if (!x || !y) bad_argument(std::string(!x ? "x" : "y") + ": expected a pointer, got NULL");
    model->impl->predict(x, batch, steps, y);
  });
}

rnncore_stream* rnncore_model_stream(const rnncore_model* model, int64_t batch) {
  rnncore_stream* out = nullptr;
  guarded("rnncore_model_stream", [&] {
    if (!model) bad_argument("model: expected a model, got NULL");
    auto s = std::make_unique<rnncore_stream>();
    s->impl = std::make_unique<rnncore::capi::Stream>(model->impl, batch);
    out = s.release();
  });
  return out;
}

int64_t rnncore_stream_output_size(const rnncore_stream* stream) {
  return stream ? stream->impl->out_features : -1;
}

int rnncore_stream_step(rnncore_stream* stream, const float* x_t, float* y_t) {
  return guarded("rnncore_stream_step", [&] {
    if (!stream) bad_argument("stream: expected a stream, got NULL");
    if (!x_t || !y_t)
      bad_argument(std::string(!x_t ? "x_t" : "y_t") + ": expected a pointer, got NULL");
    stream->impl->step(x_t, y_t);
  });
}

void rnncore_stream_reset(rnncore_stream* stream) {
  if (stream) stream->impl->reset();
}

void rnncore_stream_free(rnncore_stream* stream) {
  delete stream;
}

}  // extern "C"
