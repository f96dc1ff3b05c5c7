#include "pki/identity.h"

#include <gtest/gtest.h>

#include "pki/errors.h"
#include "pki/openssl_handles.h"

namespace loyalty::pki {
namespace {

// An unsigned certificate whose subject has the given (field, value) pairs.
X509Ptr CertWithSubject(std::initializer_list<std::pair<const char*, std::string>> entries) {
  X509Ptr cert(X509_new());
  for (const auto& [field, value] : entries) {
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), field, V_ASN1_UTF8STRING,
                               reinterpret_cast<const unsigned char*>(value.data()),
                               static_cast<int>(value.size()), -1, 0);
  }
  return cert;
}

TEST(IdentityTest, ReadsTheThreeSubjectShapes) {
  EXPECT_EQ(*IdentityFromCertificate(CertWithSubject({{"OU", "store"}, {"CN", "store:S1"}}).get()),
            (Identity{IdentityKind::kStore, "S1"}));
  EXPECT_EQ(*IdentityFromCertificate(CertWithSubject({{"OU", "admin"}, {"CN", "admin:bob"}}).get()),
            (Identity{IdentityKind::kAdmin, "bob"}));
  EXPECT_EQ(*IdentityFromCertificate(CertWithSubject({{"OU", "server"}, {"CN", "h.test"}}).get()),
            (Identity{IdentityKind::kServer, "h.test"}));
}

TEST(IdentityTest, RejectsSubjectsThatDoNotMatch) {
  const std::vector<X509Ptr> bad = [] {
    std::vector<X509Ptr> v;
    v.push_back(CertWithSubject({{"CN", "store:S1"}}));                    // no OU
    v.push_back(CertWithSubject({{"OU", "store"}, {"CN", "admin:S1"}}));   // kind mismatch
    v.push_back(CertWithSubject({{"OU", "store"}, {"CN", "store:"}}));     // empty id
    v.push_back(CertWithSubject({{"OU", "store"}, {"CN", "store:a b"}}));  // bad char
    v.push_back(CertWithSubject({{"OU", "store"}, {"OU", "admin"}, {"CN", "store:S1"}}));
    v.push_back(CertWithSubject({{"OU", "store"}, {"CN", "store:S1"}, {"CN", "store:S2"}}));
    v.push_back(CertWithSubject({{"OU", "cashier"}, {"CN", "cashier:x"}}));
    return v;
  }();
  for (const X509Ptr& cert : bad) {
    auto id = IdentityFromCertificate(cert.get());
    ASSERT_FALSE(id.ok());
    EXPECT_EQ(id.error().code, code::kInvalidIdentity);
  }
  EXPECT_FALSE(IdentityFromCertificate(nullptr).ok());
}

TEST(IdentityTest, ValidatesStoreIdsAndHosts) {
  EXPECT_TRUE(ValidateStoreId("Store_01.a-b").ok());
  EXPECT_FALSE(ValidateStoreId("").ok());
  EXPECT_FALSE(ValidateStoreId(std::string(65, 'x')).ok());
  EXPECT_FALSE(ValidateStoreId("store:1").ok());
  EXPECT_TRUE(ValidateHost("sync.example.test").ok());
  EXPECT_TRUE(ValidateHost("::1").ok());
  EXPECT_TRUE(IsIpLiteral("10.0.0.1"));
  EXPECT_FALSE(IsIpLiteral("example.test"));
  EXPECT_FALSE(ValidateHost("-bad").ok());
  EXPECT_FALSE(ValidateHost("a..b").ok());
  EXPECT_FALSE(ValidateHost("*.example.test").ok());
}

TEST(IdentityTest, DaysUntilExpiryRoundsDownAndGoesNegative) {
  X509Ptr cert(X509_new());
  auto now = std::chrono::system_clock::now();
  ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                std::chrono::system_clock::to_time_t(now + std::chrono::hours(24 * 3 + 5)));
  EXPECT_EQ(DaysUntilExpiry(cert.get(), now), 3);
  EXPECT_EQ(DaysUntilExpiry(cert.get(), now + std::chrono::hours(24 * 4)), -1);
}

}  // namespace
}  // namespace loyalty::pki
