#include "support/vocab_test_vectors.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace mixserve::testing {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// .inp: every string is followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
std::vector<VocabTestVector> load_vocab_test_vectors(const std::filesystem::path& gguf_path) {
  const std::string inp = read_text(gguf_path.string() + ".inp");
  const std::string out = read_text(gguf_path.string() + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VocabTestVector> vectors;
  size_t pos = 0;
  for (size_t hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    vectors.push_back({inp.substr(pos, hit - pos), {}});
  }
  EXPECT_EQ(pos, inp.size()) << "text after the last separator";
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line) && i < vectors.size()) {
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) vectors[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, vectors.size()) << "id lines and strings differ in number";
  return vectors;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  for (int32_t id : ids) out << ' ' << id;
  return out.str();
}

}  // namespace mixserve::testing
