// GGUF reader/writer: hand-encoded reference images, round trips of every value and tensor type,
// a table of hostile images, truncation at every byte, byte mutations, and a real vocab file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "common/error.h"
#include "model/gguf.h"
#include "support/test_support.h"

namespace mixserve::gguf {
namespace {

// Independent little-endian encoder for building reference and hostile images by hand.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes& u8(uint8_t v) { return le(v, 1); }
  Bytes& u32(uint32_t v) { return le(v, 4); }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(tensors).u64(kvs);
  }
  Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t alignment) {
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

Error parse_error(std::span<const uint8_t> bytes) {
  try {
    File::parse(bytes);
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "no error");
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& x : out) x = static_cast<uint8_t>(rng());
  return out;
}

// Deep equality of values; doubles compared by bit pattern so NaN and -0.0 round trips count.
bool same(const Value& a, const Value& b) {
  if (a.type != b.type || a.data.index() != b.data.index()) return false;
  if (const auto* x = std::get_if<double>(&a.data)) {
    const double y = std::get<double>(b.data);
    return std::memcmp(x, &y, sizeof y) == 0;
  }
  const Array* x = a.as_array();
  if (x == nullptr) return a.data == b.data;
  const Array* y = b.as_array();
  if (y == nullptr || x->type != y->type || x->items.size() != y->items.size()) return false;
  for (size_t i = 0; i < x->items.size(); ++i) {
    if (!same(x->items[i], y->items[i])) return false;
  }
  return true;
}

// Touches every value and tensor so sanitizers see any bad access.
size_t touch_all(const File& f) {
  size_t n = 0;
  for (const auto& [key, v] : f.metadata()) {
    n += key.size() + v.as_int().value_or(0) + (v.as_string() ? v.as_string()->size() : 0);
  }
  for (const auto& t : f.tensors()) {
    const auto data = f.tensor_data(t);
    n += data.empty() ? 0 : data.front() + data.back();
  }
  return n;
}

Value val(ValueType t, uint64_t v) { return Value{t, v}; }
Value sval(ValueType t, int64_t v) { return Value{t, v}; }
Value fval(ValueType t, double v) { return Value{t, v}; }

TEST(Gguf, WriterMatchesHandEncodedImage) {
  Writer w;
  w.set("a.b", make_uint32(0xDEADBEEF));
  w.set("f", make_float32(1.5f));
  const std::vector<uint8_t> data = {1, 2, 3, 4, 5, 6, 7, 8};
  w.add_tensor("t", DType::kF32, {2}, data);
  Bytes ref;
  ref.header(1, 2).kv_u32("a.b", 0xDEADBEEF).str("f").u32(6).u32(0x3FC00000);
  ref.tensor("t", {2}, 0, 0).pad(32);
  ref.b.insert(ref.b.end(), data.begin(), data.end());
  ref.pad(32);
  EXPECT_EQ(w.to_bytes(), ref.b);
}

TEST(Gguf, RoundTripEveryValueType) {
  const std::vector<std::pair<std::string, Value>> values = {
      {"u8", val(ValueType::kUInt8, 255)},
      {"i8", sval(ValueType::kInt8, -128)},
      {"u16", val(ValueType::kUInt16, 65535)},
      {"i16", sval(ValueType::kInt16, -32768)},
      {"u32", make_uint32(0xFFFFFFFFu)},
      {"i32", make_int32(std::numeric_limits<int32_t>::min())},
      {"u64", make_uint64(std::numeric_limits<uint64_t>::max())},
      {"i64", sval(ValueType::kInt64, std::numeric_limits<int64_t>::min())},
      {"f32", make_float32(-0.0f)},
      {"f32nan", make_float32(std::numeric_limits<float>::quiet_NaN())},
      {"f32inf", make_float32(-std::numeric_limits<float>::infinity())},
      {"f64", fval(ValueType::kFloat64, std::numeric_limits<double>::denorm_min())},
      {"f64pi", fval(ValueType::kFloat64, 3.141592653589793)},
      {"bool_t", make_bool(true)},
      {"bool_f", make_bool(false)},
      {"str", make_string(std::string("h\xC3\xA9llo\0x", 8))},
      {"empty_str", make_string("")},
  };
  Writer w;
  for (const auto& [k, v] : values) w.set(k, v);
  const auto bytes = w.to_bytes();
  const File f = File::parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(f.metadata()[i].first, values[i].first);  // insertion order kept
    EXPECT_TRUE(same(f.metadata()[i].second, values[i].second)) << values[i].first;
  }
  EXPECT_EQ(f.get_int("i8"), -128);
  EXPECT_EQ(f.get_int("u16"), 65535);
  EXPECT_EQ(f.get_float("u8"), 255.0);
  EXPECT_EQ(f.get_float("f64pi"), 3.141592653589793);
  EXPECT_EQ(f.get_bool("bool_t"), true);
  EXPECT_EQ(f.get_string("str")->size(), 8u);
  EXPECT_EQ(f.get_string("empty_str"), "");
  EXPECT_EQ(f.get_string("absent"), std::nullopt);
  EXPECT_EQ(f.find("absent"), nullptr);
  EXPECT_TRUE(f.tensors().empty());
}

TEST(Gguf, RoundTripArraysOfEveryElementType) {
  std::vector<std::pair<std::string, Value>> values = {
      {"a_u8", make_array(ValueType::kUInt8, {val(ValueType::kUInt8, 0), val(ValueType::kUInt8, 255)})},
      {"a_i8", make_array(ValueType::kInt8, {sval(ValueType::kInt8, -1), sval(ValueType::kInt8, 127)})},
      {"a_u16", make_array(ValueType::kUInt16, {val(ValueType::kUInt16, 513)})},
      {"a_i16", make_array(ValueType::kInt16, {sval(ValueType::kInt16, -300)})},
      {"a_u32", make_array(ValueType::kUInt32, {make_uint32(7), make_uint32(1u << 31)})},
      {"a_i32", make_int32_array({-5, 0, 5})},
      {"a_u64", make_array(ValueType::kUInt64, {make_uint64(1ull << 63)})},
      {"a_i64", make_array(ValueType::kInt64, {sval(ValueType::kInt64, -(1ll << 40))})},
      {"a_f32", make_float32_array({0.25f, -2.0f, 1e30f})},
      {"a_f64", make_array(ValueType::kFloat64, {fval(ValueType::kFloat64, 1e300)})},
      {"a_bool", make_array(ValueType::kBool, {make_bool(true), make_bool(false)})},
      {"a_str", make_string_array({"a", "", "long string past the small-string buffer"})},
  };
  for (uint32_t t = 0; t <= 12; ++t) {
    values.emplace_back("empty_" + std::to_string(t), make_array(static_cast<ValueType>(t), {}));
  }
  // Four levels of nesting: the most the format limit allows.
  Value nested = make_array(ValueType::kInt32, {make_int32(42)});
  for (int level = 0; level < 3; ++level) {
    nested = make_array(ValueType::kArray, {nested, make_array(nested.as_array()->type, {})});
  }
  values.emplace_back("nested", nested);
  Writer w;
  for (const auto& [k, v] : values) w.set(k, v);
  const auto bytes = w.to_bytes();
  const File f = File::parse(bytes);
  ASSERT_EQ(f.metadata().size(), values.size());
  for (const auto& [key, original] : values) {
    ASSERT_NE(f.find(key), nullptr) << key;
    EXPECT_TRUE(same(original, *f.find(key))) << key;
  }
  EXPECT_TRUE(same(*f.find("nested"), nested));
  EXPECT_TRUE(same(*f.find("a_i16"), make_array(ValueType::kInt16, {sval(ValueType::kInt16, -300)})));
  EXPECT_EQ(f.get_int_array("a_i32"), (std::vector<int64_t>{-5, 0, 5}));
  EXPECT_EQ(f.get_int_array("a_u8"), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(f.get_float_array("a_f32"), (std::vector<float>{0.25f, -2.0f, 1e30f}));
  EXPECT_EQ(f.get_string_array("a_str")->at(2), "long string past the small-string buffer");
  EXPECT_EQ(f.get_string_array("empty_8"), std::vector<std::string>{});
  EXPECT_EQ(f.find("empty_9")->as_array()->type, ValueType::kArray);
}

TEST(Gguf, TypedGettersRejectWrongTypes) {
  Writer w;
  w.set("n", make_uint32(3));
  w.set("s", make_string("x"));
  w.set("big", make_uint64(std::numeric_limits<uint64_t>::max()));
  w.set("ints", make_int32_array({1}));
  w.set("big_arr", make_array(ValueType::kUInt64, {make_uint64(1ull << 63)}));
  const auto bytes = w.to_bytes();
  const File f = File::parse(bytes);
  const auto expect_type_error = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_type_error([&] { f.get_string("n"); }, "'n' has type uint32, expected string");
  expect_type_error([&] { f.get_int("s"); }, "'s' has type string, expected an integer");
  expect_type_error([&] { f.get_float("s"); }, "'s' has type string");
  expect_type_error([&] { f.get_bool("n"); }, "expected bool");
  expect_type_error([&] { f.get_int("big"); }, "does not fit");
  expect_type_error([&] { f.get_string_array("ints"); }, "array[int32], expected array[string]");
  expect_type_error([&] { f.get_float_array("n"); }, "uint32, expected array[float32]");
  expect_type_error([&] { f.get_int_array("big_arr"); }, "does not fit");
  EXPECT_EQ(f.get_int("n"), 3);
  EXPECT_EQ(f.get_float("big"), 18446744073709551615.0);
}

TEST(Gguf, NonDefaultAlignment) {
  for (uint64_t alignment : {1ull, 8ull, 64ull, 4096ull}) {
    Writer w;
    w.set("k", make_string("v"));
    w.set_alignment(alignment);
    const auto a = random_bytes(6, 1), b = random_bytes(4 * 3, 2);
    w.add_tensor("a", DType::kF16, {3}, a);
    w.add_tensor("b", DType::kF32, {3}, b);
    const auto bytes = w.to_bytes();
    const File f = File::parse(bytes);
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(f.get_int("general.alignment"), static_cast<int64_t>(alignment));
    EXPECT_EQ(f.get_string("k"), "v");
    for (const auto& t : f.tensors()) {
      EXPECT_EQ(t.offset % alignment, 0u);
      EXPECT_EQ((f.tensor_data(t).data() - bytes.data()) % static_cast<ptrdiff_t>(alignment), 0);
    }
    EXPECT_TRUE(std::ranges::equal(f.tensor_data(f.tensors()[0]), a));
    EXPECT_TRUE(std::ranges::equal(f.tensor_data(f.tensors()[1]), b));
    EXPECT_EQ(bytes.size() % alignment, 0u);
  }
  Writer w;
  w.set_alignment(64);
  w.set_alignment(32);  // back to the default: the key is dropped again
  const auto bytes = w.to_bytes();
  EXPECT_EQ(File::parse(bytes).find("general.alignment"), nullptr);
}

TEST(Gguf, TensorsOfEveryComputableTypeRoundTrip) {
  struct Case {
    DType type;
    std::vector<int64_t> dims;
    size_t bytes;  // computed by hand from the block layouts
  };
  const std::vector<Case> cases = {
      {DType::kF32, {5, 3}, 5 * 3 * 4},       {DType::kF16, {7}, 7 * 2},
      {DType::kBF16, {3, 2, 2}, 12 * 2},      {DType::kQ8_0, {64, 2}, 2 * 2 * 34},
      {DType::kQ4_0, {32, 3, 1, 2}, 6 * 18},  {DType::kQ4_K, {256}, 144},  // known, not computable
  };
  Writer w;
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < cases.size(); ++i) {
    data.push_back(random_bytes(cases[i].bytes, static_cast<uint32_t>(i)));
    w.add_tensor("t" + std::to_string(i), cases[i].type, cases[i].dims, data.back());
  }
  testing::TempDir dir;
  const std::string path = dir.file("m.gguf");
  w.write(path);
  File f = File::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_TRUE(std::ranges::equal(f.image(), w.to_bytes()));
  ASSERT_EQ(f.tensors().size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const TensorInfo* t = f.find_tensor("t" + std::to_string(i));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t, &f.tensors()[i]);
    EXPECT_EQ(t->type, cases[i].type);
    EXPECT_EQ(t->dims, cases[i].dims);
    EXPECT_EQ(t->bytes, cases[i].bytes);
    EXPECT_TRUE(std::ranges::equal(f.tensor_data(*t), data[i])) << i;
  }
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
  const File moved = std::move(f);
  EXPECT_EQ(moved.tensors().size(), cases.size());
  EXPECT_EQ(moved.path(), path);
}

TEST(Gguf, WriterRejectsBadInput) {
  Writer w;
  const std::vector<uint8_t> four(4);
  EXPECT_THROW(w.add_tensor("t", DType::kF32, {2}, four), Error);
  EXPECT_THROW(w.add_tensor("t", DType::kF32, {}, four), Error);
  EXPECT_THROW(w.add_tensor("t", DType::kF32, {1, 1, 1, 1, 1}, four), Error);
  EXPECT_THROW(w.add_tensor("t", DType::kF32, {-1}, four), Error);
  EXPECT_THROW(w.add_tensor("t", DType::kQ8_0, {16}, four), Error);
  w.add_tensor("t", DType::kF32, {1}, four);
  EXPECT_THROW(w.add_tensor("t", DType::kF32, {1}, four), Error);
  EXPECT_THROW(w.set_alignment(0), Error);
  EXPECT_THROW(w.set_alignment(48), Error);
  EXPECT_THROW(w.set_alignment(1ull << 32), Error);
  EXPECT_THROW(w.set("", make_bool(true)), Error);
  EXPECT_THROW(make_array(ValueType::kInt32, {make_uint32(1)}), Error);
  w.set("bad", val(ValueType::kUInt8, 256));
  try {
    w.to_bytes();
    ADD_FAILURE() << "out-of-range uint8 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos);
  }
  w.set("bad", make_uint32(1));  // replaced in place
  EXPECT_EQ(File::parse(w.to_bytes()).get_int("bad"), 1);
  try {
    w.write("/nonexistent-dir/x.gguf");
    ADD_FAILURE() << "write to a missing directory succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.gguf"), std::string::npos);
  }
}

TEST(Gguf, AcceptsVersion2) {
  Bytes img;
  img.header(1, 1, 2).kv_u32("x", 9).tensor("w", {8}, 0, 0).pad(32).zeros(32);
  const File f = File::parse(img.b);
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.get_int("x"), 9);
  EXPECT_EQ(f.tensor_data(f.tensors()[0]).size(), 32u);
}

// A GGUF image with one tensor of `dims`/`type` at `offset` and `data_bytes` of data.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                                size_t data_bytes) {
  Bytes img;
  img.header(1, 0).tensor("w", std::move(dims), type, offset).pad(32).zeros(data_bytes);
  return img.b;
}

std::vector<uint8_t> nested_arrays(int levels) {
  Bytes img;
  img.header(0, 1).str("deep").u32(9);
  for (int i = 1; i < levels; ++i) img.u32(9).u64(1);
  img.u32(4).u64(0);
  return img.b;
}

TEST(Gguf, HostileImagesGiveDataLoss) {
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string keyword;
  };
  const uint64_t kHuge = 1ull << 60;
  std::vector<Case> cases = {
      {"empty", {}, "too small"},
      {"23-byte file", std::vector<uint8_t>(23, 'G'), "too small"},
      {"bad magic", Bytes().u32(0x47475546).u32(3).u64(0).u64(0).b, "magic"},
      {"version 1", Bytes().header(0, 0, 1).b, "version 1 is not supported"},
      {"version 4", Bytes().header(0, 0, 4).b, "unsupported GGUF version 4"},
      {"big endian", Bytes().header(0, 0, 0x03000000).b, "version"},
      {"2^40 tensors", Bytes().header(1ull << 40, 0).b, "remaining"},
      {"2^60 kvs", Bytes().header(0, kHuge).zeros(64).b, "remaining"},
      {"2^60 uint8 array", Bytes().header(0, 1).str("a").u32(9).u32(0).u64(kHuge).b, "claims"},
      {"2^59 nested arrays", Bytes().header(0, 1).str("a").u32(9).u32(9).u64(1ull << 59).b, "claims"},
      {"key length past end", Bytes().header(0, 1).u64(1000).zeros(8).b, "length"},
      {"string past end", Bytes().header(0, 1).str("s").u32(8).u64(kHuge).b, "length"},
      {"unknown value type", Bytes().header(0, 1).str("k").u32(13).u32(0).b, "unknown value type 13"},
      {"unknown element type", Bytes().header(0, 1).str("k").u32(9).u32(99).u64(0).b, "unknown value type 99"},
      {"nesting 5 deep", nested_arrays(5), "nested deeper"},
      {"bad bool", Bytes().header(0, 1).str("b").u32(7).u8(2).b, "bool"},
      {"empty key", Bytes().header(0, 1).str("").u32(4).u32(0).b, "empty metadata key"},
      {"duplicate key", Bytes().header(0, 2).kv_u32("k", 1).kv_u32("k", 2).b, "duplicate metadata key 'k'"},
      {"kv truncated", Bytes().header(0, 1).str("k").u32(4).u8(1).b, "truncated"},
      {"duplicate tensor",
       Bytes().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32).zeros(64).b,
       "duplicate tensor name 'w'"},
      {"0 dims", Bytes().header(1, 0).str("w").u32(0).u32(0).u64(0).zeros(32).b, "0 dimensions"},
      {"5 dims", one_tensor({1, 1, 1, 1, 1}, 0, 0, 32), "5 dimensions"},
      {"dim 0", one_tensor({0}, 0, 0, 32), "dimension 0 is 0"},
      {"dim negative", one_tensor({4, ~0ull}, 0, 0, 32), "dimension 1 is -1"},
      {"elements overflow", one_tensor({1ull << 32, 1ull << 32}, 0, 0, 32), "element count overflows"},
      {"bytes overflow", one_tensor({1ull << 62}, 0, 0, 32), "byte size overflows"},
      {"bytes overflow 2d", one_tensor({2, 1ull << 61}, 0, 0, 32), "byte size overflows"},
      {"unknown tensor type", one_tensor({8}, 99, 0, 32), "unknown type id 99"},
      {"removed type 4", one_tensor({32}, 4, 0, 32), "unknown type id 4"},
      {"partial block", one_tensor({33}, 8, 0, 64), "block size 32"},
      {"unaligned offset", one_tensor({4}, 0, 16, 64), "not a multiple of the alignment"},
      {"data past end", one_tensor({8}, 0, 0, 31), "past the end"},
      {"offset past end", one_tensor({8}, 0, 1ull << 63, 32), "past the end"},
      {"overlap",
       Bytes().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad(32).zeros(64).b,
       "'a' and 'b' overlap"},
      {"alignment 48", Bytes().header(0, 1).kv_u32("general.alignment", 48).b, "power of two"},
      {"alignment 0", Bytes().header(0, 1).kv_u32("general.alignment", 0).b, "power of two"},
      {"alignment uint64", Bytes().header(0, 1).str("general.alignment").u32(10).u64(32).b, "expected uint32"},
      {"huge alignment",
       Bytes().header(1, 1).kv_u32("general.alignment", 1u << 31).tensor("w", {8}, 0, 0).zeros(64).b,
       "past the end"},
  };
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const Error e = parse_error(c.bytes);
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << c.name << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(c.keyword), std::string::npos) << c.name << ": " << e.what();
  }
  // Sanity: the images differ from valid ones only in the defect.
  EXPECT_NO_THROW(File::parse(nested_arrays(4)));
  EXPECT_NO_THROW(File::parse(one_tensor({32, 2}, 8, 0, 68)));
  EXPECT_NO_THROW(File::parse(Bytes().header(0, 1).kv_u32("general.alignment", 16).b));
}

// A small valid file whose last byte belongs to the last tensor, so every prefix is invalid.
std::vector<uint8_t> small_valid_file() {
  Writer w;
  w.set("general.name", make_string("tiny"));
  w.set("ids", make_int32_array({1, -2, 3}));
  w.set("flag", make_bool(true));
  w.add_tensor("a", DType::kF16, {3}, random_bytes(6, 7));
  w.add_tensor("b", DType::kF32, {8}, random_bytes(32, 8));
  return w.to_bytes();
}

TEST(Gguf, TruncationAtEveryByteGivesDataLoss) {
  const auto full = small_valid_file();
  ASSERT_NO_THROW(File::parse(full));
  for (size_t n = 0; n < full.size(); ++n) {
    const Error e = parse_error(std::span(full).first(n));
    ASSERT_EQ(e.code(), ErrorCode::kDataLoss) << "prefix " << n << ": " << e.what();
    ASSERT_EQ(std::string(e.what()).rfind("GGUF file '<memory>': ", 0), 0u) << e.what();
  }
}

TEST(Gguf, ByteMutationsNeverCrash) {
  const auto full = small_valid_file();
  size_t accepted = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xFF}) {
      auto mutated = full;
      mutated[i] ^= flip;
      try {
        touch_all(File::parse(mutated));
        ++accepted;
      } catch (const Error& e) {
        ASSERT_EQ(e.code(), ErrorCode::kDataLoss) << i << ": " << e.what();
      }
    }
  }
  EXPECT_GT(accepted, 0u);  // flips inside string or tensor bytes stay valid
}

TEST(Gguf, OpenMissingFileIsNotFound) {
  testing::TempDir dir;
  const std::string path = dir.file("nope.gguf");
  try {
    File::open(path);
    ADD_FAILURE() << "opened a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::ofstream(dir.file("empty.gguf")).close();
  try {
    File::open(dir.file("empty.gguf"));
    ADD_FAILURE() << "opened an empty file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("empty.gguf"), std::string::npos) << e.what();
  }
}

TEST(Gguf, ReadsLlamaSpmVocab) {
  MIXSERVE_SHARED_OR_SKIP(path, "vocab/ggml-vocab-llama-spm.gguf");
  const File f = File::open(path.string());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.has_value());
  EXPECT_EQ(tokens->size(), 32000u);
  EXPECT_EQ(tokens->at(0), "<unk>");
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores")->size(), 32000u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type")->size(), 32000u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
}

TEST(Gguf, ReadsEverySharedVocab) {
  MIXSERVE_SHARED_OR_SKIP(dir, "vocab");
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".gguf") continue;
    const File f = File::open(entry.path().string());
    const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.has_value()) << entry.path();
    EXPECT_GT(tokens->size(), 1000u) << entry.path();
    EXPECT_TRUE(f.get_string("tokenizer.ggml.model").has_value()) << entry.path();
    ++files;
  }
  EXPECT_GT(files, 0u);
}

}  // namespace
}  // namespace mixserve::gguf
