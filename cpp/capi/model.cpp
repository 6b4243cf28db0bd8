// Model files to runnable layers: the architecture JSON names each layer, its weights are the
// file's tensors "<layer name>.<index>" in Keras's layout, converted here once to the kernels'
// (PyTorch's) layout. Recurrent layers run the same kernels as Python; Dense and the
// activations are computed here.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "errors.h"
#include "json.h"
#include "model_file.h"
#include "rnncore/layer.h"

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

// ---- activations (as rnncore/activations.py computes them) ----

enum class Act { Linear, Relu, Tanh, Sigmoid, Softmax, Softplus, Elu };

Act to_act(const Config& c, const std::string& key) {
  static const std::map<std::string, Act> names = {
      {"linear", Act::Linear},   {"relu", Act::Relu},       {"tanh", Act::Tanh},
      {"sigmoid", Act::Sigmoid}, {"softmax", Act::Softmax}, {"softplus", Act::Softplus},
      {"elu", Act::Elu}};
  const std::string name = c.text(key, "linear");
  auto it = names.find(name);
  if (it == names.end()) unsupported("layer '" + c.layer + "': activation '" + name + "'");
  return it->second;
}

// act over each row of n values, in place.
void activate(Act act, float* a, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  switch (act) {
    case Act::Linear: return;
    case Act::Relu:
      for (int64_t i = 0; i < total; ++i) a[i] = std::max(a[i], 0.0f);
      return;
    case Act::Tanh:
      for (int64_t i = 0; i < total; ++i) a[i] = std::tanh(a[i]);
      return;
    case Act::Sigmoid:
      for (int64_t i = 0; i < total; ++i) a[i] = 0.5f * (std::tanh(0.5f * a[i]) + 1.0f);
      return;
    case Act::Softplus:
      for (int64_t i = 0; i < total; ++i)
        a[i] = std::max(a[i], 0.0f) + std::log1p(std::exp(-std::fabs(a[i])));
      return;
    case Act::Elu:
      for (int64_t i = 0; i < total; ++i) a[i] = a[i] > 0 ? a[i] : std::expm1(a[i]);
      return;
    case Act::Softmax:
      for (int64_t r = 0; r < rows; ++r) {
        float* row = a + r * n;
        const float top = *std::max_element(row, row + n);
        float sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - top));
        for (int64_t j = 0; j < n; ++j) row[j] /= sum;
      }
      return;
  }
}

// ---- Dense (and TimeDistributed(Dense)) ----

class Dense : public Layer {
 public:
  Dense(const Config& c, const std::string& weights_name, int64_t in, Weights& w)
      : in_(in), units_(c.units("units")), act_(to_act(c, "activation")) {
    kernel_ = w.take(weights_name + ".0", {in_, units_});  // [in, units]
    if (c.flag("use_bias", true)) bias_ = w.take(weights_name + ".1", {units_});
  }
  SampleShape output(const SampleShape& in) const override {
    SampleShape out = in;
    out.features = units_;
    return out;
  }
  void forward(const float* x, int64_t B, const SampleShape& in, float* y) const override {
    apply(x, B * (in.sequence ? in.steps : 1), y);
  }
  // y [rows, units] = act(x [rows, in] · kernel + bias)
  void apply(const float* x, int64_t rows, float* y) const {
    for (int64_t r = 0; r < rows; ++r) {
      float* out = y + r * units_;
      for (int64_t j = 0; j < units_; ++j) out[j] = 0.0f;
      for (int64_t k = 0; k < in_; ++k) {
        const float xk = x[r * in_ + k];
        const float* wk = kernel_.data() + k * units_;
        for (int64_t j = 0; j < units_; ++j) out[j] += xk * wk[j];
      }
      for (int64_t j = 0; j < units_ && !bias_.empty(); ++j) out[j] += bias_[j];
    }
    activate(act_, y, rows, units_);
  }
  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t) const override;

 private:
  int64_t in_, units_;
  Act act_;
  std::vector<float> kernel_, bias_;
};

class DenseStep : public StepLayer {
 public:
  DenseStep(const Dense& d, int64_t B, int64_t out) : dense_(d), B_(B) { out_features = out; }
  void step(const float* x, float* y) override { dense_.apply(x, B_, y); }

 private:
  const Dense& dense_;  // alive as long as the stream: it holds its model
  int64_t B_;
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

  // The kernels over x [B, T, I]: y_time [B, T, H] in time order and h_n [B, H].
  void run(const float* x, int64_t B, int64_t T, float* y_time, float* h_n) const {
    Dims d;
    d.T = T;
    d.B = B;
    d.I = I_;
    d.H = H_;
    d.batch_first = true;
    d.reverse = go_backwards_;
    ForwardArgs<float> a;
    a.x = x;
    a.w_ih = w_ih_.data();
    a.w_hh = w_hh_.data();
    a.b_ih = b_ih_.empty() ? nullptr : b_ih_.data();
    a.b_hh = b_hh_.empty() ? nullptr : b_hh_.data();
    a.y = y_time;
    a.h_n = h_n;
    std::vector<float> c_n(cell_ == Cell::Lstm ? size_t(B * H_) : 0);
    a.c_n = c_n.empty() ? nullptr : c_n.data();
    layer_forward<float>(cell_, d, a);
  }

  void forward(const float* x, int64_t B, const SampleShape& in, float* y) const override {
    const int64_t T = in.steps;
    std::vector<float> seq(size_t(B * T * H_)), h_n(size_t(B * H_));
    run(x, B, T, seq.data(), h_n.data());
    if (!return_sequences_) {
      std::copy(h_n.begin(), h_n.end(), y);
      return;
    }
    for (int64_t b = 0; b < B; ++b)  // Keras's go_backwards output runs in processing order
      for (int64_t t = 0; t < T; ++t) {
        const int64_t src = go_backwards_ ? T - 1 - t : t;
        std::copy_n(seq.data() + (b * T + src) * H_, H_, y + (b * T + t) * H_);
      }
  }

  std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const override;

  Cell cell_ = Cell::Lstm;
  int64_t I_, H_;
  bool return_sequences_ = false, go_backwards_ = false;
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
  RecurrentStep(const Recurrent& r, int64_t B) : cell_(r.cell_), B_(B), I_(r.I_), H_(r.H_) {
    out_features = H_;
    const int64_t GH = gate_count(cell_) * H_;
    w_ih_p_.resize(size_t(packed_weight_elems<float>(GH, I_)));
    pack_weights<float>(r.w_ih_.data(), GH, I_, w_ih_p_.data());
    w_hh_p_.resize(size_t(packed_weight_elems<float>(GH, H_)));
    pack_weights<float>(r.w_hh_.data(), GH, H_, w_hh_p_.data());
    b_ih_ = r.b_ih_;
    b_hh_ = r.b_hh_;
    h_.assign(size_t(B * H_), 0.0f);
    c_.assign(cell_ == Cell::Lstm ? size_t(B * H_) : 0, 0.0f);
    gx_.assign(size_t(B * GH), 0.0f);
    gh_.assign(size_t(B * GH), 0.0f);
    rh_.assign(size_t(B * H_), 0.0f);
  }
  void step(const float* x, float* y) override {
    StepArgs<float> a;
    a.x = x;
    a.w_ih_p = w_ih_p_.data();
    a.w_hh_p = w_hh_p_.data();
    a.b_ih = b_ih_.empty() ? nullptr : b_ih_.data();
    a.b_hh = b_hh_.empty() ? nullptr : b_hh_.data();
    a.h = h_.data();
    a.c = c_.empty() ? nullptr : c_.data();
    a.gx = gx_.data();
    a.gh = gh_.data();
    a.rh = rh_.data();
    stream_step<float>(cell_, B_, I_, H_, a);
    std::copy(h_.begin(), h_.end(), y);
  }
  void reset() override {
    std::fill(h_.begin(), h_.end(), 0.0f);
    std::fill(c_.begin(), c_.end(), 0.0f);
  }

 private:
  Cell cell_;
  int64_t B_, I_, H_;
  std::vector<float> w_ih_p_, w_hh_p_, b_ih_, b_hh_;
  std::vector<float> h_, c_, gx_, gh_, rh_;  // [B, H], [B, H], [B, G*H], [B, G*H], [B, H]
};

std::unique_ptr<StepLayer> Recurrent::stepper(int64_t B, int64_t) const {
  if (go_backwards_) unsupported(name + ": go_backwards runs the sequence from its end");
  return std::make_unique<RecurrentStep>(*this, B);
}

// Dense steps use the model's layer itself (a Stream holds its model).
std::unique_ptr<StepLayer> Dense::stepper(int64_t B, int64_t) const {
  return std::make_unique<DenseStep>(*this, B, units_);
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
  void forward(const float* x, int64_t B, const SampleShape& in, float* y) const override {
    const int64_t T = in.steps, H = fwd_->units();
    std::vector<float> yf(size_t(B * T * H)), yb(yf.size()), hf(size_t(B * H)), hb(hf.size());
    fwd_->run(x, B, T, yf.data(), hf.data());
    bwd_->run(x, B, T, yb.data(), hb.data());  // time order, as Keras merges it
    const bool seq = fwd_->return_sequences();
    merge(seq ? yf.data() : hf.data(), seq ? yb.data() : hb.data(), (seq ? B * T : B), H, y);
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
  void forward(const float* x, int64_t B, const SampleShape& in, float* y) const override {
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
  } else {
    unsupported("layer '" + name + "': the C runtime has no " + k +
                " layer (it runs Input, "
                "SimpleRNN, LSTM, GRU, Bidirectional, Dense, TimeDistributed(Dense), Dropout, "
                "Flatten)");
  }
  layer->name = name;
  layer->kind = k;
  return layer;
}

}  // namespace

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
  if (shape->items.size() != 2)
    fail(RNNCORE_ERROR_UNSUPPORTED, path + ": the C runtime takes (steps, features) inputs");
  auto model = std::make_unique<Model>();
  const json::Value& steps = shape->items[0];
  if (steps.kind != json::Value::Kind::Null && !steps.as_int(1, kMaxUnits, &model->input_steps))
    bad("architecture: invalid input steps");
  if (!shape->items[1].as_int(1, kMaxUnits, &model->input_features))
    bad("architecture: invalid input features");
  const json::Value* layers = cfg->find("layers");
  if (!layers || !layers->is_array() || layers->items.empty())
    bad("architecture: expected a list of layers");
  Weights weights(file);
  SampleShape s{model->input_steps ? model->input_steps : 1, model->input_features, true};
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
  const float* cur = x;
  for (size_t i = 0; i < layers.size(); ++i) {
    const SampleShape next = layers[i]->output(s);
    const int64_t n = checked_mul(B, next.size(), "batch * output size");
    float* dst = y;
    if (i + 1 < layers.size()) {
      out.resize(size_t(n));
      dst = out.data();
    }
    layers[i]->forward(cur, B, s, dst);
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
