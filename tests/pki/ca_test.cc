#include "pki/ca.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/bundle.h"
#include "pki/errors.h"
#include "pki/files.h"
#include "pki/openssl_handles.h"
#include "tests/pki/temp_dir.h"

namespace loyalty::pki {
namespace {

using std::chrono::days;
using testing::TempDir;

mode_t ModeOf(const std::filesystem::path& p) {
  auto m = FileMode(p);
  EXPECT_TRUE(m.ok());
  return m.ok() ? *m : 0;
}

X509Ptr ReadCert(const std::filesystem::path& p) {
  auto pem = ReadFile(p);
  EXPECT_TRUE(pem.ok());
  auto cert = CertFromPem(pem.ok() ? *pem : "");
  EXPECT_TRUE(cert.ok());
  return cert.ok() ? std::move(*cert) : nullptr;
}

std::string Subject(X509* cert) {
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
  return buf;
}

// OpenSSL's own verdict on `cert` against the CA and, optionally, its CRL.
int VerifyCode(const std::filesystem::path& ca_dir, X509* cert, bool check_crl) {
  X509Ptr ca = ReadCert(ca_dir / "ca.pem");
  std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca.get());
  if (check_crl) {
    auto crl = CrlFromPem(*ReadFile(ca_dir / "crl.pem"));
    EXPECT_TRUE(crl.ok());
    X509_STORE_add_crl(store.get(), crl->get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  }
  std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr);
  X509_verify_cert(ctx.get());
  return X509_STORE_CTX_get_error(ctx.get());
}

class CaTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitCa(ca_dir()).ok()); }
  std::filesystem::path ca_dir() const { return tmp_ / "ca"; }
  TempDir tmp_;
};

TEST_F(CaTest, InitCreatesCaFilesWithPrivateKeyMode) {
  for (const char* name : {"ca.pem", "ca-key.pem", "crl.pem", "serial", "index.tsv"}) {
    EXPECT_TRUE(std::filesystem::exists(ca_dir() / name)) << name;
  }
  EXPECT_EQ(ModeOf(ca_dir() / "ca-key.pem"), 0600u);
  EXPECT_EQ(ModeOf(ca_dir()), 0700u);
  X509Ptr ca = ReadCert(ca_dir() / "ca.pem");
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_GE(DaysUntilExpiry(ca.get()), 3649);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(ca.get())), EVP_PKEY_EC);
}

TEST_F(CaTest, InitRefusesToOverwriteAnExistingCa) {
  auto before = ReadFile(ca_dir() / "ca-key.pem");
  auto again = InitCa(ca_dir());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, code::kCaExists);
  EXPECT_EQ(*ReadFile(ca_dir() / "ca-key.pem"), *before);
}

TEST_F(CaTest, IssueStoreWritesABundleWithTheDocumentedSubject) {
  auto issued = IssueStore(ca_dir(), "S-042", tmp_ / "store");
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  EXPECT_EQ(ModeOf(tmp_ / "store"), 0700u);
  EXPECT_EQ(ModeOf(tmp_ / "store" / "key.pem"), 0600u);
  X509Ptr cert = ReadCert(tmp_ / "store" / "cert.pem");
  EXPECT_EQ(Subject(cert.get()), "/O=Loyalty/OU=store/CN=store:S-042");
  EXPECT_TRUE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT);
  EXPECT_FALSE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER);
  EXPECT_EQ(VerifyCode(ca_dir(), cert.get(), true), X509_V_OK);
  auto bundle = LoadBundle(tmp_ / "store");
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_EQ(*BundleIdentity(*bundle), (Identity{IdentityKind::kStore, "S-042"}));
  long left = *BundleDaysUntilExpiry(*bundle);
  EXPECT_GE(left, 363);
  EXPECT_LE(left, 365);
}

TEST_F(CaTest, IssueServerPutsTheHostInSubjectAltName) {
  ASSERT_TRUE(IssueServer(ca_dir(), "sync.example.test", tmp_ / "dns").ok());
  ASSERT_TRUE(IssueServer(ca_dir(), "127.0.0.1", tmp_ / "ip").ok());
  X509Ptr dns = ReadCert(tmp_ / "dns" / "cert.pem");
  X509Ptr ip = ReadCert(tmp_ / "ip" / "cert.pem");
  EXPECT_EQ(X509_check_host(dns.get(), "sync.example.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(dns.get(), "other.example.test", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(ip.get(), "127.0.0.1", 0), 1);
  EXPECT_TRUE(X509_get_extended_key_usage(dns.get()) & XKU_SSL_SERVER);
  EXPECT_EQ(*IdentityFromCertificate(dns.get()),
            (Identity{IdentityKind::kServer, "sync.example.test"}));
}

TEST_F(CaTest, IssueAdminUsesTheAdminSubject) {
  ASSERT_TRUE(IssueAdmin(ca_dir(), "alice", tmp_ / "admin").ok());
  X509Ptr cert = ReadCert(tmp_ / "admin" / "cert.pem");
  EXPECT_EQ(Subject(cert.get()), "/O=Loyalty/OU=admin/CN=admin:alice");
  EXPECT_EQ(*IdentityFromCertificate(cert.get()), (Identity{IdentityKind::kAdmin, "alice"}));
}

TEST_F(CaTest, RejectsInvalidIdentitiesAndWritesNothing) {
  for (const std::string& bad :
       std::vector<std::string>{"", "has space", "slash/id", "semi;colon", std::string(65, 'a')}) {
    auto issued = IssueStore(ca_dir(), bad, tmp_ / "bad");
    ASSERT_FALSE(issued.ok()) << bad;
    EXPECT_EQ(issued.error().code, code::kInvalidIdentity);
  }
  EXPECT_FALSE(IssueServer(ca_dir(), "bad host", tmp_ / "bad").ok());
  EXPECT_FALSE(IssueAdmin(ca_dir(), "a:b", tmp_ / "bad").ok());
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "bad"));
  EXPECT_TRUE(IssueStore(ca_dir(), std::string(64, 'z'), tmp_ / "longest").ok());
}

TEST_F(CaTest, IssueRefusesAnExistingBundleAndMissingCa) {
  ASSERT_TRUE(IssueStore(ca_dir(), "S1", tmp_ / "b").ok());
  auto again = IssueStore(ca_dir(), "S2", tmp_ / "b");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, code::kBundleExists);
  auto no_ca = IssueStore(tmp_ / "nowhere", "S1", tmp_ / "c");
  ASSERT_FALSE(no_ca.ok());
  EXPECT_EQ(no_ca.error().code, code::kNoCa);
}

TEST_F(CaTest, SerialsAreUnique) {
  auto a = IssueStore(ca_dir(), "S1", tmp_ / "a");
  auto b = IssueStore(ca_dir(), "S1", tmp_ / "b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->serial, b->serial);
}

TEST_F(CaTest, ValidityIsConfigurableIncludingInThePast) {
  IssueOptions expired;
  expired.not_before = std::chrono::system_clock::now() - days(10);
  expired.validity = days(1);
  ASSERT_TRUE(IssueStore(ca_dir(), "S1", tmp_ / "old", expired).ok());
  X509Ptr cert = ReadCert(tmp_ / "old" / "cert.pem");
  EXPECT_LT(DaysUntilExpiry(cert.get()), 0);
  EXPECT_EQ(VerifyCode(ca_dir(), cert.get(), false), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_F(CaTest, RevokeListsEveryCertOfTheStoreInTheCrl) {
  ASSERT_TRUE(IssueStore(ca_dir(), "S1", tmp_ / "s1a").ok());
  ASSERT_TRUE(IssueStore(ca_dir(), "S1", tmp_ / "s1b").ok());
  ASSERT_TRUE(IssueStore(ca_dir(), "S2", tmp_ / "s2").ok());
  auto revoked = Revoke(ca_dir(), "S1");
  ASSERT_TRUE(revoked.ok()) << revoked.error().message;
  EXPECT_EQ(*revoked, 2);
  EXPECT_EQ(VerifyCode(ca_dir(), ReadCert(tmp_ / "s1a" / "cert.pem").get(), true),
            X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(VerifyCode(ca_dir(), ReadCert(tmp_ / "s1b" / "cert.pem").get(), true),
            X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(VerifyCode(ca_dir(), ReadCert(tmp_ / "s2" / "cert.pem").get(), true), X509_V_OK);
  auto crl = CrlFromPem(*ReadFile(ca_dir() / "crl.pem"));
  ASSERT_TRUE(crl.ok());
  EXPECT_NE(X509_CRL_get0_nextUpdate(crl->get()), nullptr);
  EXPECT_EQ(*Revoke(ca_dir(), "S1"), 0);  // idempotent
}

TEST_F(CaTest, RevokeOfAnUnknownStoreIsNotFound) {
  auto revoked = Revoke(ca_dir(), "never-issued");
  ASSERT_FALSE(revoked.ok());
  EXPECT_EQ(revoked.error().code, core::code::kNotFound);
}

TEST_F(CaTest, RenewReplacesKeyAndCertForTheSameIdentity) {
  auto first = IssueStore(ca_dir(), "S7", tmp_ / "b");
  ASSERT_TRUE(first.ok());
  auto old_key = *ReadFile(tmp_ / "b" / "key.pem");
  auto renewed = Renew(ca_dir(), tmp_ / "b");
  ASSERT_TRUE(renewed.ok()) << renewed.error().message;
  EXPECT_NE(renewed->serial, first->serial);
  EXPECT_NE(*ReadFile(tmp_ / "b" / "key.pem"), old_key);
  EXPECT_EQ(ModeOf(tmp_ / "b" / "key.pem"), 0600u);
  auto bundle = LoadBundle(tmp_ / "b");
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_EQ(*BundleIdentity(*bundle), (Identity{IdentityKind::kStore, "S7"}));
}

TEST_F(CaTest, RenewRefusesARevokedCertificate) {
  ASSERT_TRUE(IssueStore(ca_dir(), "S7", tmp_ / "b").ok());
  ASSERT_TRUE(Revoke(ca_dir(), "S7").ok());
  auto renewed = Renew(ca_dir(), tmp_ / "b");
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, code::kRevoked);
}

TEST_F(CaTest, RenewRefusesABundleFromAnotherCa) {
  ASSERT_TRUE(InitCa(tmp_ / "other").ok());
  ASSERT_TRUE(IssueStore(tmp_ / "other", "S7", tmp_ / "b").ok());
  auto renewed = Renew(ca_dir(), tmp_ / "b");
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, code::kBadBundle);
}

TEST_F(CaTest, LoadBundleRefusesAKeyReadableByOthers) {
  ASSERT_TRUE(IssueStore(ca_dir(), "S1", tmp_ / "b").ok());
  std::filesystem::permissions(tmp_ / "b" / "key.pem", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto bundle = LoadBundle(tmp_ / "b");
  ASSERT_FALSE(bundle.ok());
  EXPECT_EQ(bundle.error().code, code::kInsecureKeyFile);
}

TEST_F(CaTest, LoadBundleRefusesMismatchedKey) {
  ASSERT_TRUE(IssueStore(ca_dir(), "S1", tmp_ / "a").ok());
  ASSERT_TRUE(IssueStore(ca_dir(), "S2", tmp_ / "b").ok());
  std::filesystem::copy_file(tmp_ / "a" / "key.pem", tmp_ / "b" / "key.pem",
                             std::filesystem::copy_options::overwrite_existing);
  auto bundle = LoadBundle(tmp_ / "b");
  ASSERT_FALSE(bundle.ok());
  EXPECT_EQ(bundle.error().code, code::kBadBundle);
}

}  // namespace
}  // namespace loyalty::pki
