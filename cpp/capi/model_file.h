// Model files (safetensors, as Python's model.save writes them) read with every field checked
// before anything is allocated for it: header size cap, JSON, dtypes, shapes, offsets that
// tile the data area exactly.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rnncore::capi {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // float32 only: the C runtime runs float32 models
};

struct ModelFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Throws Error(RNNCORE_ERROR_FILE) saying what is wrong with the file.
ModelFile read_model_file(const std::string& path);

}  // namespace rnncore::capi
