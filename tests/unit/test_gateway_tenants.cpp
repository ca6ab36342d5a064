// Gateway tenants: which tenant a Bearer key belongs to (keys from files), and each tenant's token
// bucket (burst, refusal with retry-after, refill over explicit time points, unlimited rate).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "gateway/tenants.h"
#include "support/test_support.h"

namespace mixserve::gateway {
namespace {

using Clock = Tenants::Clock;

Clock::duration secs(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

TenantConfig tenant(const std::string& name, const std::string& key_file, double rps = 0, double burst = 1) {
  TenantConfig t;
  t.name = name;
  t.key_file = key_file;
  t.requests_per_s = rps;
  t.burst = burst;
  t.max_body_bytes = 0;
  return t;
}

// Three tenants with keys in temp files.
class TenantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_.file("a.txt"), "# team a\nsk-team-a-key-one\nsk-team-a-key-two\n");
    write_file(dir_.file("b.txt"), "  sk-team-b-only-key  \n");
    write_file(dir_.file("c.txt"), "\n# c\nsk-team-c-00000001\n");
  }
  mixserve::testing::TempDir dir_;
};

TEST_F(TenantsTest, TenantIdentifiesTheRightTenant) {
  Tenants t({tenant("a", dir_.file("a.txt")), tenant("b", dir_.file("b.txt")), tenant("c", dir_.file("c.txt"))});
  EXPECT_TRUE(t.enabled());
  EXPECT_EQ(t.identify("Bearer sk-team-a-key-one"), std::optional<size_t>(0));
  EXPECT_EQ(t.identify("Bearer sk-team-a-key-two"), std::optional<size_t>(0));
  EXPECT_EQ(t.identify("Bearer sk-team-b-only-key"), std::optional<size_t>(1));
  EXPECT_EQ(t.identify("Bearer sk-team-c-00000001"), std::optional<size_t>(2));
  EXPECT_EQ(t.config(0).name, "a");
  EXPECT_EQ(t.config(1).name, "b");
  EXPECT_EQ(t.config(2).name, "c");
}

TEST_F(TenantsTest, TenantWrongOrMissingKeyIsNobody) {
  Tenants t({tenant("a", dir_.file("a.txt")), tenant("b", dir_.file("b.txt"))});
  for (const char* bad : {"", "Bearer ", "Bearer sk-team-a-key-on", "Bearer sk-team-a-key-one2", "sk-team-a-key-one",
                          "Basic sk-team-a-key-one", "Bearer sk-team-c-00000001", "Bearer # team a"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(t.identify(bad).has_value());
  }
}

TEST_F(TenantsTest, TenantNoTenantsMeansNoKeys) {
  Tenants t({});
  EXPECT_FALSE(t.enabled());
  EXPECT_FALSE(t.identify("Bearer sk-team-a-key-one").has_value());
}

TEST_F(TenantsTest, TenantBadKeyFilesAreRefused) {
  try {
    Tenants t({tenant("a", dir_.file("a.txt")), tenant("x", dir_.file("absent.txt"))});
    FAIL() << "missing key file accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("absent.txt"), std::string::npos) << e.what();
  }
  write_file(dir_.file("bad.txt"), "# nothing but comments\n");
  try {
    Tenants t({tenant("x", dir_.file("bad.txt"))});
    FAIL() << "key file without keys accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("bad.txt"), std::string::npos) << e.what();
  }
}

TEST_F(TenantsTest, TenantBucketBurstThenRefusal) {
  Tenants t({tenant("a", dir_.file("a.txt"), 2, 3)});
  const auto t0 = Clock::now();
  double retry = -1;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(t.admit(0, t0, &retry)) << "request " << i << " of the burst";
  EXPECT_DOUBLE_EQ(retry, -1) << "retry_after is left alone on success";
  EXPECT_FALSE(t.admit(0, t0, &retry));
  EXPECT_NEAR(retry, 0.5, 1e-6) << "one request comes back after 1 / requests_per_s";
  retry = -1;
  EXPECT_FALSE(t.admit(0, t0 + secs(0.25), &retry));
  EXPECT_NEAR(retry, 0.25, 1e-6) << "half a token refilled: half the wait left";
  EXPECT_TRUE(t.admit(0, t0 + secs(0.5), &retry)) << "retry_after was honest";
  EXPECT_FALSE(t.admit(0, t0 + secs(0.5), &retry));
  EXPECT_NEAR(retry, 0.5, 1e-6);
  EXPECT_FALSE(t.admit(0, t0 + secs(0.5), nullptr)) << "retry_after is optional";
}

TEST_F(TenantsTest, TenantBucketRefillsUpToBurst) {
  Tenants t({tenant("a", dir_.file("a.txt"), 10, 5)});
  const auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(t.admit(0, t0, nullptr));
  ASSERT_FALSE(t.admit(0, t0, nullptr));
  // 0.35 s at 10/s: 3.5 tokens, so 3 requests.
  const auto t1 = t0 + secs(0.35);
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += t.admit(0, t1, nullptr) ? 1 : 0;
  EXPECT_EQ(admitted, 3);
  // A long idle period fills the bucket to the burst, not beyond.
  const auto t2 = t0 + secs(3600);
  admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += t.admit(0, t2, nullptr) ? 1 : 0;
  EXPECT_EQ(admitted, 5);
  // Steady state: one request every 0.1 s is always admitted.
  for (int i = 1; i <= 50; ++i) EXPECT_TRUE(t.admit(0, t2 + secs(0.1 * i + 1e-6), nullptr)) << i;
}

TEST_F(TenantsTest, TenantSustainedRateOverManyRequests) {
  // Offered 4 requests/s for 100 s against 1 request/s with a burst of 2: about 100 + 2 get in.
  Tenants t({tenant("a", dir_.file("a.txt"), 1, 2)});
  const auto t0 = Clock::now();
  int admitted = 0;
  for (int i = 0; i < 400; ++i) admitted += t.admit(0, t0 + secs(0.25 * i), nullptr) ? 1 : 0;
  EXPECT_GE(admitted, 100);
  EXPECT_LE(admitted, 102);
}

TEST_F(TenantsTest, TenantZeroRateIsUnlimited) {
  Tenants t({tenant("a", dir_.file("a.txt"), 0, 1)});
  const auto t0 = Clock::now();
  double retry = -1;
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(t.admit(0, t0, &retry)) << i;
  EXPECT_DOUBLE_EQ(retry, -1);
}

TEST_F(TenantsTest, TenantBucketsAreIndependent) {
  Tenants t({tenant("a", dir_.file("a.txt"), 1, 1), tenant("b", dir_.file("b.txt"), 1, 2)});
  const auto t0 = Clock::now();
  EXPECT_TRUE(t.admit(0, t0, nullptr));
  EXPECT_FALSE(t.admit(0, t0, nullptr));
  EXPECT_TRUE(t.admit(1, t0, nullptr)) << "a's empty bucket does not touch b's";
  EXPECT_TRUE(t.admit(1, t0, nullptr));
  EXPECT_FALSE(t.admit(1, t0, nullptr));
  EXPECT_THROW((void)t.admit(7, t0, nullptr), std::out_of_range);
}

// Callers take `now` before the bucket's lock, so two threads can arrive out of order. A time point
// older than the last refill must not move the refill time back: here it does (tenants.cpp sets
// `t.refilled = now` unconditionally), and the same interval is credited twice.
TEST_F(TenantsTest, TenantOutOfOrderTimePointDoesNotCreditTwice) {
  Tenants t({tenant("a", dir_.file("a.txt"), 1, 1)});
  const auto t0 = Clock::now();
  ASSERT_TRUE(t.admit(0, t0, nullptr));                // bucket empty
  ASSERT_TRUE(t.admit(0, t0 + secs(1), nullptr));      // refilled once, empty again at t0 + 1
  EXPECT_FALSE(t.admit(0, t0 + secs(0.5), nullptr));   // a late caller with an older time point
  EXPECT_FALSE(t.admit(0, t0 + secs(1.5), nullptr)) << "only 0.5 s since the bucket was emptied at t0 + 1";
}

TEST(TenantTokens, TokenAllows) {
  mixserve::testing::TempDir dir;
  write_file(dir.file("admin.txt"), "sk-admin-token-1\n");
  const serve::ApiKeys keys = serve::ApiKeys::load(dir.file("admin.txt"));
  EXPECT_TRUE(token_allows(keys, "Bearer sk-admin-token-1"));
  EXPECT_FALSE(token_allows(keys, "Bearer sk-admin-token-2"));
  EXPECT_FALSE(token_allows(keys, ""));
  EXPECT_FALSE(token_allows(serve::ApiKeys(), "Bearer anything")) << "no tokens configured: nobody is admin";
  EXPECT_FALSE(token_allows(serve::ApiKeys(), ""));
}

}  // namespace
}  // namespace mixserve::gateway
