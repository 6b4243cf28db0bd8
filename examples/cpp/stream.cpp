// Frame-by-frame inference from C++: a causal model (unidirectional recurrent layers, Dense)
// trained in Python, run one step at a time as a real-time loop would (no allocation per step).
//
//     stream MODEL X_FILE STEPS Y_FILE
//
// X_FILE holds STEPS frames of `features` float32 values (one sequence); Y_FILE gets one
// output row per frame. Build: see examples/CMakeLists.txt (find_package(rnncore)).
#include <rnncore/rnncore.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Owning handles: the C API's free functions run however the scope ends.
struct ModelFree {
  void operator()(rnncore_model* m) const { rnncore_model_free(m); }
};
struct StreamFree {
  void operator()(rnncore_stream* s) const { rnncore_stream_free(s); }
};

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + rnncore_last_error());
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL X_FILE STEPS Y_FILE\n", argv[0]);
    return 2;
  }
  const int64_t steps = std::stoll(argv[3]);
  std::unique_ptr<rnncore_model, ModelFree> model(rnncore_model_load(argv[1]));
  check(model != nullptr, "load");
  std::unique_ptr<rnncore_stream, StreamFree> stream(rnncore_model_stream(model.get(), 1));
  check(stream != nullptr, "stream");
  const int64_t features = rnncore_model_input_features(model.get());
  const int64_t outputs = rnncore_stream_output_size(stream.get());

  std::vector<float> x(static_cast<size_t>(steps * features));
  std::ifstream in(argv[2], std::ios::binary);
  check(bool(in.read(reinterpret_cast<char*>(x.data()), std::streamsize(x.size() * 4))),
        std::string(argv[2]) + ": cannot read the frames");
  std::vector<float> y(static_cast<size_t>(steps * outputs));
  for (int64_t t = 0; t < steps; ++t)  // the real-time loop: one frame in, one frame out
    check(rnncore_stream_step(stream.get(), x.data() + t * features, y.data() + t * outputs) ==
              RNNCORE_OK,
          "step");
  std::ofstream out(argv[4], std::ios::binary);
  check(bool(out.write(reinterpret_cast<const char*>(y.data()), std::streamsize(y.size() * 4))),
        std::string(argv[4]) + ": cannot write");
  std::printf("streamed %lld frames of %lld features -> %lld outputs per frame\n",
              static_cast<long long>(steps), static_cast<long long>(features),
              static_cast<long long>(outputs));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
