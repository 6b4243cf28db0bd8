/* Batch prediction from C with a model trained and saved in Python (model.save).
 *
 *     predict MODEL X_FILE BATCH STEPS Y_FILE
 *
 * X_FILE holds BATCH * STEPS * features float32 values (row-major [batch, steps, features],
 * e.g. x.astype("float32").tofile(...) in NumPy); the predictions go to Y_FILE the same way.
 * Build: see examples/CMakeLists.txt (find_package(rnncore)).
 */
#include <rnncore/rnncore.h>
#include <stdio.h>
#include <stdlib.h>

static float* read_floats(const char* path, size_t count) {
  FILE* f = fopen(path, "rb");
  float* data = malloc(count * sizeof(float));
  if (!f || !data || fread(data, sizeof(float), count, f) != count) {
    fprintf(stderr, "%s: cannot read %zu floats\n", path, count);
    exit(1);
  }
  fclose(f);
  return data;
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s MODEL X_FILE BATCH STEPS Y_FILE\n", argv[0]);
    return 2;
  }
  const int64_t batch = atoll(argv[3]), steps = atoll(argv[4]);
  rnncore_model* model = rnncore_model_load(argv[1]);
  if (!model) {
    fprintf(stderr, "load failed: %s\n", rnncore_last_error());
    return 1;
  }
  const int64_t features = rnncore_model_input_features(model);
  const int64_t out_size = rnncore_model_output_size(model, steps);
  if (out_size < 0 || batch < 1) {
    fprintf(stderr, "bad sizes: %s\n", rnncore_last_error());
    return 1;
  }
  float* x = read_floats(argv[2], (size_t)(batch * steps * features));
  float* y = malloc((size_t)(batch * out_size) * sizeof(float));
  if (rnncore_model_predict(model, x, batch, steps, y) != RNNCORE_OK) {
    fprintf(stderr, "predict failed: %s\n", rnncore_last_error());
    return 1;
  }
  FILE* out = fopen(argv[5], "wb");
  if (!out ||
      fwrite(y, sizeof(float), (size_t)(batch * out_size), out) != (size_t)(batch * out_size)) {
    fprintf(stderr, "%s: cannot write\n", argv[5]);
    return 1;
  }
  fclose(out);
  printf("rnncore %s: %lld samples x %lld steps x %lld features -> %lld outputs each; y[0] = %g\n",
         rnncore_version(), (long long)batch, (long long)steps, (long long)features,
         (long long)out_size, y[0]);
  free(x);
  free(y);
  rnncore_model_free(model);
  return 0;
}
