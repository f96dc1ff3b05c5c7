// The customer display's translations, as compiled into the agent: every
// language has every key of English and no other, each plural message has
// the forms its language needs, placeholders match, and the page uses only
// keys that exist (and every key is used).
#include <google/protobuf/struct.pb.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>

#include "agent/display_assets.h"
#include "proto/json.h"

namespace loyalty::agent {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

Struct Messages(const std::string& language) {
  Struct out;
  const DisplayAsset* asset = FindDisplayAsset("i18n/" + language + ".json");
  EXPECT_TRUE(asset) << language;
  if (!asset) return out;
  EXPECT_EQ(proto::ParseJson(asset->content, &out), "") << language;
  return out;
}

std::set<std::string> Keys(const Struct& s) {
  std::set<std::string> keys;
  for (const auto& [key, value] : s.fields()) keys.insert(key);
  return keys;
}

// The {placeholders} of one message, over all its plural forms.
std::set<std::string> Placeholders(const Value& message) {
  std::set<std::string> out;
  auto scan = [&](const std::string& text) {
    for (std::size_t open = text.find('{'); open != std::string::npos;
         open = text.find('{', open + 1)) {
      const std::size_t close = text.find('}', open);
      if (close != std::string::npos) out.insert(text.substr(open + 1, close - open - 1));
    }
  };
  if (message.has_struct_value()) {
    for (const auto& [form, text] : message.struct_value().fields()) scan(text.string_value());
  } else {
    scan(message.string_value());
  }
  return out;
}

// Every `prefix` + key + `quote` in `text`, e.g. t("key" or data-i18n="key".
std::set<std::string> UsedKeys(std::string_view text, const std::string& prefix) {
  std::set<std::string> keys;
  for (std::size_t at = text.find(prefix); at != std::string_view::npos;
       at = text.find(prefix, at + 1)) {
    if (at > 0) {
      const char before = text[at - 1];
      if (std::isalnum(static_cast<unsigned char>(before)) || before == '_' || before == '.') {
        continue;  // the end of another name, e.g. text("id"
      }
    }
    const std::size_t start = at + prefix.size();
    const std::size_t end = text.find('"', start);
    if (end != std::string_view::npos) keys.insert(std::string(text.substr(start, end - start)));
  }
  return keys;
}

TEST(DisplayTranslations, EnglishSpanishAndPolishAreThere) {
  const auto languages = DisplayLanguages();
  for (const char* l : {"en", "es", "pl"}) {
    EXPECT_NE(std::find(languages.begin(), languages.end(), l), languages.end()) << l;
  }
}

TEST(DisplayTranslations, EveryLanguageHasExactlyTheKeysOfEnglish) {
  const Struct en = Messages("en");
  ASSERT_GT(en.fields_size(), 10);
  for (const std::string& language : DisplayLanguages()) {
    const Struct other = Messages(language);
    const auto want = Keys(en), got = Keys(other);
    for (const auto& k : want) EXPECT_TRUE(got.count(k)) << language << " lacks " << k;
    for (const auto& k : got) EXPECT_TRUE(want.count(k)) << language << " has extra " << k;
  }
}

TEST(DisplayTranslations, MessagesHaveTheirPluralFormsAndTheSamePlaceholders) {
  // The CLDR plural categories each language needs for whole numbers.
  const std::map<std::string, std::set<std::string>> kForms = {
      {"en", {"one", "other"}},
      {"es", {"one", "many", "other"}},
      {"pl", {"one", "few", "many", "other"}}};
  const Struct en = Messages("en");
  for (const std::string& language : DisplayLanguages()) {
    const Struct messages = Messages(language);
    for (const auto& [key, value] : messages.fields()) {
      const auto reference = en.fields().find(key);
      if (reference == en.fields().end()) continue;  // reported by the test above
      const Value& message = value;
      const bool plural = reference->second.has_struct_value();
      ASSERT_EQ(message.has_struct_value(), plural) << language << " " << key;
      if (plural) {
        std::set<std::string> forms = Keys(message.struct_value());
        EXPECT_TRUE(forms.count("other")) << language << " " << key;
        if (auto f = kForms.find(language); f != kForms.end()) {
          for (const auto& form : f->second) {
            EXPECT_TRUE(forms.count(form)) << language << " " << key << " lacks " << form;
          }
        }
      } else {
        EXPECT_TRUE(message.has_string_value()) << language << " " << key;
        EXPECT_FALSE(message.string_value().empty()) << language << " " << key;
      }
      EXPECT_EQ(Placeholders(message), Placeholders(reference->second)) << language << " " << key;
    }
  }
}

TEST(DisplayTranslations, ThePageUsesOnlyKeysThatExistAndEveryKeyIsUsed) {
  const DisplayAsset* html = FindDisplayAsset("index.html");
  const DisplayAsset* js = FindDisplayAsset("app.js");
  ASSERT_TRUE(html && js);
  std::set<std::string> used = UsedKeys(html->content, "data-i18n=\"");
  for (const char* call : {"t(\"", "tp(\""}) {
    for (const auto& k : UsedKeys(js->content, call)) used.insert(k);
  }
  ASSERT_GT(used.size(), 10u);
  const auto keys = Keys(Messages("en"));
  for (const auto& k : used) EXPECT_TRUE(keys.count(k)) << "the page uses missing key " << k;
  for (const auto& k : keys) EXPECT_TRUE(used.count(k)) << "unused key " << k;
}

}  // namespace
}  // namespace loyalty::agent
