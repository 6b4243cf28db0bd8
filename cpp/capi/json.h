// A small strict JSON reader for model files: objects, arrays, strings, numbers, literals.
// Nesting is capped, so a hostile header cannot exhaust the stack.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rnncore::capi::json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string text;                                   // String
  std::vector<Value> items;                           // Array
  std::vector<std::pair<std::string, Value>> fields;  // Object, in file order

  // The field `key` of an object, or nullptr (also when this is not an object).
  const Value* find(const std::string& key) const;
  bool is_object() const { return kind == Kind::Object; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Number; }
  // A whole number in [lo, hi], or false.
  bool as_int(int64_t lo, int64_t hi, int64_t* out) const;
};

// Parses `text` whole (nothing but whitespace after the value); throws std::invalid_argument
// saying where it stops.
Value parse(const std::string& text);

}  // namespace rnncore::capi::json
