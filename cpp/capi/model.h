// The C runtime's models: a Sequential of the layers a deployed model uses, built from a
// model file, run for a batch (predict) or one step at a time (streams).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rnncore::capi {

// What one sample looks like between layers: (steps, features) or (features).
struct SampleShape {
  int64_t steps = 0;  // sequences only
  int64_t features = 0;
  bool sequence = true;
  int64_t size() const { return sequence ? steps * features : features; }
};

// Which steps of each sample are real, [B, T] (Keras's masks: Masking, Embedding(mask_zero));
// empty: every step.
using Mask = std::vector<uint8_t>;

// One layer's state for streaming: one step of `batch` rows at a time.
class StepLayer {
 public:
  virtual ~StepLayer() = default;
  virtual void step(const float* x, float* y) = 0;  // x [B, in], y [B, out_features]
  virtual void reset() {}
  int64_t out_features = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;
  // The output for an input of shape `in`; throws Error for one the layer cannot take.
  virtual SampleShape output(const SampleShape& in) const = 0;
  // y [B, output(in).size()] from x [B, in.size()] whose steps `mask` marks.
  virtual void forward(const float* x, int64_t B, const SampleShape& in, const Mask& mask,
                       float* y) const = 0;
  // The mask the next layer sees (as Keras's compute_mask): by default the input's when the
  // layer passes masks on, else none.
  virtual Mask mask_out(const float* x, int64_t B, const SampleShape& in, const Mask& mask) const;
  // The layer run step by step for `B` rows of `in_features`; throws Error(UNSUPPORTED) for
  // a layer that is not causal.
  virtual std::unique_ptr<StepLayer> stepper(int64_t B, int64_t in_features) const;
  std::string name;  // as in the file (error messages)
  std::string kind;  // class name
  bool passes_mask = false;
};

class Model {
 public:
  static std::unique_ptr<Model> load(const std::string& path);
  SampleShape output(int64_t steps) const;  // throws Error for a wrong number of steps
  void predict(const float* x, int64_t B, int64_t steps, float* y) const;

  int64_t input_steps = 0;  // 0: any
  int64_t input_features = 0;
  std::vector<std::unique_ptr<Layer>> layers;
};

// A model run step by step; it holds the model, which may be freed by its owner first.
class Stream {
 public:
  Stream(std::shared_ptr<const Model> model, int64_t B);
  void step(const float* x, float* y);
  void reset();
  int64_t batch = 0;
  int64_t out_features = 0;

 private:
  std::shared_ptr<const Model> model_;
  std::vector<std::unique_ptr<StepLayer>> layers_;
  std::vector<std::vector<float>> between_;  // [B, features] after each layer but the last
  std::atomic<bool> busy_{false};
};

}  // namespace rnncore::capi
