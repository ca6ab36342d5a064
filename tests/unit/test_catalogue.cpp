// Chip catalogue: shipped content (every id of issue 5, domestic flags, a source on every figure),
// the embedded copy against data/chips.yaml, schema validation errors and name matching.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "support/test_support.h"

namespace {

using mixserve::Error;
using mixserve::ErrorCode;
using mixserve::fleet::Catalogue;
using mixserve::fleet::ChipSpec;
using mixserve::fleet::Figure;

const std::set<std::string> kForeignIds = {"nvidia-h100", "nvidia-h800", "nvidia-h20",    "nvidia-a100",
                                           "nvidia-a800", "nvidia-l20",  "nvidia-rtx4090"};
const std::set<std::string> kDomesticIds = {
    "huawei-ascend-910b", "huawei-ascend-910c", "huawei-ascend-310p", "cambricon-mlu370", "cambricon-mlu590",
    "hygon-k100",         "kunlunxin-p800",     "mthreads-s4000",     "metax-c500",       "iluvatar-bi-v150"};
const std::set<std::string> kCpuIds = {"cpu-x86", "cpu-arm"};

std::vector<const Figure*> figures(const ChipSpec& c) {
  return {&c.memory_gib, &c.memory_bandwidth_gbs, &c.fp16_tflops, &c.bf16_tflops, &c.int8_tops, &c.tdp_w};
}

TEST(Catalogue, BuiltinHasEveryIssueId) {
  const auto cat = Catalogue::builtin();
  for (const auto& set : {kForeignIds, kDomesticIds, kCpuIds}) {
    for (const auto& id : set) EXPECT_TRUE(cat.find(id).has_value()) << id;
  }
  EXPECT_FALSE(cat.find("nvidia-b200").has_value());
}

TEST(Catalogue, DomesticFlagsForChina) {
  const auto cat = Catalogue::builtin();
  for (const auto& id : kDomesticIds) {
    EXPECT_TRUE(cat.is_domestic(id)) << id;
    EXPECT_TRUE(cat.is_domestic(id, "CN")) << id;
    EXPECT_FALSE(cat.is_domestic(id, "US")) << id;
    EXPECT_TRUE(cat.find(id)->accelerator) << id;
  }
  for (const auto& id : kForeignIds) {
    EXPECT_FALSE(cat.is_domestic(id)) << id;
    EXPECT_TRUE(cat.is_domestic(id, "US")) << id;
  }
  for (const auto& id : kCpuIds) {
    EXPECT_FALSE(cat.find(id)->accelerator) << id << ": generic CPUs are not AI accelerators";
    EXPECT_FALSE(cat.is_domestic(id)) << id;
  }
  EXPECT_FALSE(cat.is_domestic("no-such-chip"));
}

TEST(Catalogue, EveryFigureHasASourceAndIsPlausible) {
  const auto cat = Catalogue::builtin();
  const std::set<std::string> stacks = {"cuda", "cann", "bang", "dtk", "hip", "musa", "maca", "corex", "xpu", "cpu"};
  for (const auto& [id, c] : cat.chips()) {
    SCOPED_TRACE(id);
    EXPECT_FALSE(c.vendor.empty());
    EXPECT_FALSE(c.model.empty());
    EXPECT_FALSE(c.memory_type.empty());
    EXPECT_EQ(c.country.size(), 2u);
    EXPECT_TRUE(stacks.count(c.stack));
    EXPECT_FALSE(c.match.empty()) << "vendor tools need a name pattern";
    for (const auto* f : figures(c)) {
      EXPECT_GT(f->value, 0);
      EXPECT_GE(f->source.size(), 10u) << "a source says where the figure comes from";
    }
    // Physical sanity: INT8 peak at least the FP16 peak, memory in a sane range.
    EXPECT_GE(c.int8_tops.value, c.fp16_tflops.value);
    EXPECT_LE(c.memory_gib.value, 1024);
    EXPECT_LE(c.fp16_tflops.value, 5000);
  }
  // Domestic chips have no public datasheets for most figures: press figures must be marked.
  for (const auto& id :
       {"huawei-ascend-910b", "huawei-ascend-910c", "cambricon-mlu590", "kunlunxin-p800", "hygon-k100"}) {
    EXPECT_TRUE(cat.find(id)->fp16_tflops.estimate) << id;
  }
}

TEST(Catalogue, DatasheetPins) {
  // Figures typed from NVIDIA's datasheets (dense = half the sparsity figure).
  const auto cat = Catalogue::builtin();
  EXPECT_NEAR(cat.find("nvidia-h100")->fp16_tflops.value, 1979.0 / 2, 0.15);  // whitepaper: 989.4 dense
  EXPECT_DOUBLE_EQ(cat.find("nvidia-h100")->memory_bandwidth_gbs.value, 3350);
  EXPECT_DOUBLE_EQ(cat.find("nvidia-a100")->fp16_tflops.value, 624.0 / 2);
  EXPECT_DOUBLE_EQ(cat.find("nvidia-a100")->memory_bandwidth_gbs.value, 2039);
  EXPECT_DOUBLE_EQ(cat.find("nvidia-rtx4090")->memory_gib.value, 24);
  EXPECT_FALSE(cat.find("nvidia-h100")->fp16_tflops.estimate);
  EXPECT_TRUE(cat.find("nvidia-h20")->fp16_tflops.estimate);
}

TEST(Catalogue, EmbeddedCopyMatchesDataFile) {
  const auto path = std::filesystem::path(MIXSERVE_TEST_DATA_DIR) / ".." / ".." / "data" / "chips.yaml";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const auto file = Catalogue::load(path.string());
  const auto builtin = Catalogue::builtin();
  ASSERT_EQ(file.chips().size(), builtin.chips().size());
  for (const auto& [id, c] : file.chips()) {
    const auto b = builtin.find(id);
    ASSERT_TRUE(b.has_value()) << id;
    EXPECT_EQ(b->model, c.model);
    EXPECT_EQ(b->fp16_tflops.value, c.fp16_tflops.value);
    EXPECT_EQ(b->tdp_w.source, c.tdp_w.source);
  }
}

const char* kGoodChip = R"(
chips:
  - id: acme-x1
    vendor: Acme
    model: X1
    country: CN
    stack: cann
    memory_type: HBM3
    memory_gib: {value: 64, source: "acme datasheet"}
    memory_bandwidth_gbs: {value: 1600, source: "acme datasheet"}
    fp16_tflops: {value: 300, source: "acme datasheet"}
    bf16_tflops: {value: 300, source: "acme datasheet"}
    int8_tops: {value: 600, source: "acme datasheet", estimate: true}
    tdp_w: {value: 350, source: "acme datasheet"}
    match: ["X1"]
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

// Parses `text` and returns the error message (empty when it parsed).
std::string parse_error(const std::string& text) {
  try {
    Catalogue::parse(text, "bad.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

void expect_error(const std::string& text, std::initializer_list<const char*> parts) {
  const auto msg = parse_error(text);
  ASSERT_FALSE(msg.empty()) << "expected an error";
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' missing from: " << msg;
}

TEST(CatalogueValidation, GoodFileParses) {
  const auto cat = Catalogue::parse(kGoodChip, "good.yaml");
  ASSERT_TRUE(cat.find("acme-x1"));
  EXPECT_TRUE(cat.find("acme-x1")->int8_tops.estimate);
  EXPECT_FALSE(cat.find("acme-x1")->fp16_tflops.estimate);
  EXPECT_TRUE(cat.is_domestic("acme-x1"));
}

TEST(CatalogueValidation, ErrorsNameFileChipKeyAndProblem) {
  expect_error(replace(kGoodChip, "    match:", "    colour: red\n    match:"),
               {"bad.yaml:", "chip 'acme-x1'", "key 'colour'", "unknown key"});
  expect_error(replace(kGoodChip, "{value: 300, source: \"acme datasheet\"}\n    bf16",
                       "{value: lots, source: \"acme datasheet\"}\n    bf16"),
               {"chip 'acme-x1' fp16_tflops", "key 'value'", "expected a number, got 'lots'"});
  expect_error(replace(kGoodChip, "value: 350", "value: -350"), {"chip 'acme-x1' tdp_w", "must not be negative"});
  expect_error(replace(kGoodChip, "    tdp_w: {value: 350, source: \"acme datasheet\"}\n", ""),
               {"chip 'acme-x1'", "key 'tdp_w'", "required key is missing"});
  expect_error(replace(kGoodChip, "stack: cann", "stack: opencl"), {"key 'stack'", "unknown stack 'opencl'"});
  expect_error(replace(kGoodChip, "country: CN", "country: China"), {"key 'country'", "two-letter"});
  expect_error(replace(kGoodChip, "{value: 1600, source: \"acme datasheet\"}", "{value: 1600}"),
               {"memory_bandwidth_gbs", "key 'source'", "required key is missing"});
  expect_error(replace(kGoodChip, "memory_gib: {value: 64, source: \"acme datasheet\"}", "memory_gib: 64"),
               {"key 'memory_gib'", "expected {value"});
  expect_error(replace(kGoodChip, "estimate: true", "estimate: maybe"), {"key 'estimate'", "expected true or false"});
  expect_error(replace(kGoodChip, "id: acme-x1", "id: Acme_X1"), {"key 'id'", "lower-case"});
  expect_error(std::string(kGoodChip) + std::string(kGoodChip).substr(std::string(kGoodChip).find("  - id")),
               {"chip 'acme-x1'", "duplicate chip id"});
  expect_error("chips:\n  - id: x\n    vendor: [1, 2\n", {"bad.yaml:", "YAML syntax error"});
  expect_error("version: 2\nchips: []\n", {"key 'version'", "unsupported version"});
  expect_error("chipz: []\n", {"key 'chipz'", "unknown key"});
  expect_error("chips: {a: 1}\n", {"key 'chips'", "expected a list"});
}

TEST(CatalogueValidation, ErrorLineNumberPointsAtTheProblem) {
  const auto msg = parse_error(replace(kGoodChip, "value: 350", "value: -350"));
  // kGoodChip starts with a newline: line 14 holds tdp_w.
  EXPECT_NE(msg.find("bad.yaml:14:"), std::string::npos) << msg;
}

TEST(CatalogueOverrides, PartialUpdateKeepsOtherFieldsAndNewChipsMustBeComplete) {
  auto cat = Catalogue::builtin();
  const auto before = *cat.find("huawei-ascend-910b");
  cat.apply_overrides_text(
      "chips:\n  - id: huawei-ascend-910b\n    fp16_tflops: {value: 376, source: \"site survey\", estimate: true}\n",
      "site.yaml");
  const auto after = *cat.find("huawei-ascend-910b");
  EXPECT_EQ(after.fp16_tflops.value, 376);
  EXPECT_EQ(after.fp16_tflops.source, "site survey");
  EXPECT_EQ(after.memory_gib.value, before.memory_gib.value);
  EXPECT_EQ(after.vendor, before.vendor);
  EXPECT_EQ(after.match, before.match);
  cat.apply_overrides_text(kGoodChip, "site.yaml");
  EXPECT_TRUE(cat.find("acme-x1"));
  EXPECT_TRUE(cat.find("nvidia-h100"));
  try {
    cat.apply_overrides_text("chips:\n  - id: brand-new\n    vendor: X\n", "site.yaml");
    ADD_FAILURE() << "a new chip needs every required key";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chip 'brand-new'"), std::string::npos) << e.what();
  }
}

TEST(CatalogueOverrides, FromFileAndMissingFile) {
  mixserve::testing::TempDir dir;
  const auto path = dir.file("extra.yaml");
  std::ofstream(path) << kGoodChip;
  auto cat = Catalogue::builtin();
  cat.apply_overrides(path);
  EXPECT_TRUE(cat.find("acme-x1"));
  try {
    Catalogue::load(dir.file("absent.yaml"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST(CatalogueMatch, VendorToolNames) {
  const auto cat = Catalogue::builtin();
  auto m = [&](const std::string& vendor, const std::string& name) {
    return cat.match(vendor, name).value_or("<none>");
  };
  EXPECT_EQ(m("NVIDIA", "NVIDIA H100 80GB HBM3"), "nvidia-h100");
  EXPECT_EQ(m("", "NVIDIA H100 PCIe"), "nvidia-h100");
  EXPECT_EQ(m("NVIDIA", "NVIDIA H20"), "nvidia-h20");
  EXPECT_EQ(m("NVIDIA", "NVIDIA H200"), "<none>") << "H20 must not match H200";
  EXPECT_EQ(m("NVIDIA", "NVIDIA A100-SXM4-80GB"), "nvidia-a100");
  EXPECT_EQ(m("NVIDIA", "NVIDIA A800 80GB PCIe"), "nvidia-a800");
  EXPECT_EQ(m("NVIDIA", "NVIDIA GeForce RTX 4090"), "nvidia-rtx4090");
  EXPECT_EQ(m("NVIDIA", "NVIDIA L20"), "nvidia-l20");
  EXPECT_EQ(m("NVIDIA", "NVIDIA L40S"), "<none>");
  EXPECT_EQ(m("Huawei", "910B3"), "huawei-ascend-910b");
  EXPECT_EQ(m("Huawei", "Ascend910B4"), "huawei-ascend-910b");
  EXPECT_EQ(m("Huawei", "Ascend 910C"), "huawei-ascend-910c");
  EXPECT_EQ(m("Huawei", "310P3"), "huawei-ascend-310p");
  EXPECT_EQ(m("Huawei", "910"), "<none>");
  EXPECT_EQ(m("Cambricon", "MLU370-X8"), "cambricon-mlu370");
  EXPECT_EQ(m("Cambricon", "MLU590-H8"), "cambricon-mlu590");
  EXPECT_EQ(m("Hygon", "K100_AI"), "hygon-k100");
  EXPECT_EQ(m("", "MTT S4000"), "mthreads-s4000");
  EXPECT_EQ(m("", "MXC500"), "metax-c500");
  EXPECT_EQ(m("", "Iluvatar BI-V150"), "iluvatar-bi-v150");
  EXPECT_EQ(m("Huawei", "NVIDIA H100"), "<none>") << "a known vendor narrows the search";
  EXPECT_EQ(m("SomeOEM", "NVIDIA H100"), "nvidia-h100") << "an unknown vendor does not";
  EXPECT_EQ(m("", ""), "<none>");
}

}  // namespace
