// zh, the command line, against a real zerohopd: typed values go in as written and come out
// as real JSON (arrays as arrays, UTF-8 as is).

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon_fixture.h"

namespace zerohop::testing {
namespace {

Path P(std::string_view s) { return *Path::Parse(s); }

// Quotes `s` for /bin/sh.
std::string Sh(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

class ZhTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/zh-cli-XXXXXX";
        dir_ = mkdtemp(tmpl);
        daemon_ = std::make_unique<Daemon>(dir_);
        daemon_->Start();
        auto c = daemon_->Connect("rw-key");
        ASSERT_TRUE(c.ok()) << c.status();
        client_ = std::move(*c);
    }
    void TearDown() override {
        client_.reset();
        daemon_.reset();
        std::filesystem::remove_all(dir_);
    }

    // Runs zh with `args` (each quoted for the shell); its output and exit code.
    std::string Zh(const std::vector<std::string>& args, int* code) {
        const char* zh = getenv("ZH");
        EXPECT_NE(zh, nullptr) << "ZH must name the zh binary";
        std::string cmd = absl::StrCat(zh, " --socket ", Sh(daemon_->socket()), " --key rw-key");
        for (const std::string& a : args) {
            absl::StrAppend(&cmd, " ", Sh(a));
        }
        return RunShell(cmd, code);
    }

    std::string dir_;
    std::unique_ptr<Daemon> daemon_;
    std::unique_ptr<Client> client_;
};

TEST_F(ZhTest, KvPutStoresEachValueWithTheTypeItIsWrittenIn) {
    int code = -1;
    std::string out = Zh({"kv-put", "/demo/v", "n=42", "x=1.5", "yes=true", "word=Alice", "one=\"1\"",
                          "quoted='two words'", "empty=\"\"", "escaped=\"a\\\"b\"", "ints=[1, 2, 3]", "doubles=[1.5,2]",
                          "none=[]", "blob=b64:aGVsbG8=", "when=t:2026-11-29T10:00:00.5Z", "utf8=naïve"},
                         &code);
    ASSERT_EQ(code, 0) << out;
    auto item = client_->GetItem({.path = P("/demo/v")});
    ASSERT_TRUE(item.ok()) << item.status();
    const AttributeMap& a = item->attributes;
    EXPECT_EQ(a.at("n"), Value::Int64(42));
    EXPECT_EQ(a.at("x"), Value::Double(1.5));
    EXPECT_EQ(a.at("yes"), Value::Bool(true));
    EXPECT_EQ(a.at("word"), Value::String("Alice"));
    EXPECT_EQ(a.at("one"), Value::String("1")) << "a quoted number is a string";
    EXPECT_EQ(a.at("quoted"), Value::String("two words"));
    EXPECT_EQ(a.at("empty"), Value::String(""));
    EXPECT_EQ(a.at("escaped"), Value::String("a\"b"));
    EXPECT_EQ(a.at("ints"), Value::Int64Array({1, 2, 3}));
    EXPECT_EQ(a.at("doubles"), Value::DoubleArray({1.5, 2}));
    EXPECT_EQ(a.at("none"), Value::Int64Array({}));
    EXPECT_EQ(a.at("blob"), Value::Blob("hello"));
    EXPECT_EQ(a.at("when"), Value::Time(Timestamp{1795946400, 500000000}));
    EXPECT_EQ(a.at("utf8"), Value::String("naïve"));
}

TEST_F(ZhTest, JsonOutputIsJsonWithArraysAsArraysAndUtf8AsIs) {
    ASSERT_TRUE(client_
                    ->PutItem({.path = P("/demo/j"),
                               .attributes = {{"ints", Value::Int64Array({1, 2})},
                                              {"doubles", Value::DoubleArray({0.5})},
                                              {"name", Value::String("Zoë \"the\" ünïcode")},
                                              {"raw", Value::Blob(std::string("\0\xff", 2))},
                                              {"when", Value::Time(Timestamp{0, 5})},
                                              {"n", Value::Int64(-3)},
                                              {"flag", Value::Bool(false)}}})
                    .ok());
    int code = -1;
    std::string out = Zh({"--json", "kv-get", "/demo/j"}, &code);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("Zoë"), std::string::npos) << "UTF-8 is written as is: " << out;
    auto j = nlohmann::json::parse(out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << out;
    EXPECT_EQ(j["ints"], nlohmann::json::array({1, 2}));
    EXPECT_EQ(j["doubles"], nlohmann::json::array({0.5}));
    EXPECT_EQ(j["name"], "Zoë \"the\" ünïcode");
    EXPECT_EQ(j["raw"]["blob"], "AP8=");
    EXPECT_EQ(j["when"]["time"], "1970-01-01T00:00:00.000000005Z");
    EXPECT_EQ(j["n"], -3);
    EXPECT_EQ(j["flag"], false);

    // Every line of ls, scan and status is a JSON document too.
    for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
             {"--json", "ls", "/demo"}, {"--json", "scan", "/demo"}, {"--json", "status"}}) {
        std::string lines = Zh(cmd, &code);
        ASSERT_EQ(code, 0) << lines;
        for (absl::string_view line : absl::StrSplit(lines, '\n', absl::SkipEmpty())) {
            EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << "not JSON: " << line;
        }
    }
}

TEST_F(ZhTest, AValueThatCannotBeReadIsAUsageErrorNamingTheAttribute) {
    for (const std::string& bad : {std::string("a=[1, x]"), std::string("a=b64:%%%"), std::string("a=t:yesterday"),
                                   std::string("a=\"unterminated")}) {
        int code = -1;
        std::string out = Zh({"kv-put", "/demo/bad", bad}, &code);
        EXPECT_EQ(code, 2) << bad << ": " << out;
        EXPECT_NE(out.find("zh: a: "), std::string::npos) << bad << ": " << out;
    }
    EXPECT_FALSE(client_->Stat(P("/demo/bad")).ok()) << "nothing was written";
}

}  // namespace
}  // namespace zerohop::testing
