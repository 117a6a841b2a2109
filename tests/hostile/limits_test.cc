// The limits that make untrusted packages safe to open, at the library
// level: chat-template rendering budgets, PCRE2 match limits, the symlink
// policy and regular-file reads. Each limit is also shown NOT to get in the
// way of real inputs of a generous size.
#include <sys/stat.h>

#include <string>

#include "hostile/hostile_support.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "nlohmann/json.hpp"
#include "tokenizer/chat_template.h"
#include "tokenizer/pretokenizer.h"

namespace llmpack::hostile {
namespace {

using nlohmann::json;

absl::StatusOr<std::string> Render(const std::string& source,
                                   const json& vars = json::object()) {
  return tokenizer::RenderJinjaTemplate(source, vars);
}

TEST(HostileLimits, TemplateRunawayLoopIsResourceExhausted) {
  const auto r = Render(
      "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% for d in xs %}"
      "{{ a }}{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
      {{"xs", json(std::vector<int>(1000, 1))}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("rendering exceeded"), std::string::npos)
      << r.status();
}

TEST(HostileLimits, TemplateOutputCapIsResourceExhausted) {
  // 20 copies of a 1 MB string: 20 MB of output, over the 16 MiB cap, in
  // far fewer steps than the work budget allows.
  const auto r = Render("{% for a in xs %}{{ big }}{% endfor %}",
                        {{"xs", json(std::vector<int>(20, 1))},
                         {"big", std::string(1 << 20, 'x')}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("output exceeds 16777216 bytes"),
            std::string::npos)
      << r.status();
}

TEST(HostileLimits, TemplateNestingIsResourceExhausted) {
  const auto deep =
      Render("{{ " + std::string(65, '[') + std::string(65, ']') + " }}");
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), absl::StatusCode::kResourceExhausted);
  const auto neg = Render("{{ " + std::string(200, '-') + "1 }}");
  EXPECT_EQ(neg.status().code(), absl::StatusCode::kResourceExhausted);
  std::string nots;
  for (int i = 0; i < 100; ++i) nots += "not ";
  EXPECT_EQ(Render("{{ " + nots + "true }}").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(
      Render("{{ " + std::string(60, '(') + "1" + std::string(60, ')') + " }}")
          .ok());
}

TEST(HostileLimits, LongConversationStaysWithinTheLimits) {
  // 200 messages of 1 KB through a Llama-3-like template (which looks at
  // messages[0] on every turn): 200 KB rendered.
  std::vector<tokenizer::ChatMessage> messages;
  for (int i = 0; i < 200; ++i) {
    messages.push_back({i % 2 ? "assistant" : "user", std::string(1000, 'x')});
  }
  const auto r = tokenizer::RenderChatTemplate(
      "{{ bos_token }}{% for m in messages %}{% if loop.first and "
      "messages[0].role == 'system' %}{% set s = m.content %}{% endif %}"
      "<|start|>{{ m.role }}<|end|>\n\n{{ m.content | trim }}<|eot|>"
      "{% endfor %}{% if add_generation_prompt %}<|start|>assistant"
      "<|end|>\n\n{% endif %}",
      messages, {true, "<s>", "</s>"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->size(), 200000u);
}

TEST(HostileLimits, CatastrophicRegexIsAnErrorNotAMisSplit) {
  auto re = tokenizer::SplitRegex::Compile("(?:a+)+b|[^b]");
  ASSERT_TRUE(re.ok());
  const std::string text(40, 'a');
  std::vector<tokenizer::Piece> pieces;
  const absl::Status s = (*re)->Split(text, {0, text.size()}, &pieces);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("match limit"), std::string::npos) << s;
  EXPECT_NE(s.message().find("(?:a+)+b"), std::string::npos) << s;
}

TEST(HostileLimits, RealSplitPatternsPassHugeRuns) {
  // Llama 3's split pattern on megabyte runs of one letter, one digit class
  // and whitespace: far from the match limit.
  auto re = tokenizer::SplitRegex::Compile(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
  ASSERT_TRUE(re.ok());
  for (const std::string& text :
       {std::string(1 << 20, 'a'), std::string(1 << 20, ' '),
        std::string(1 << 20, '\n'), std::string(1 << 20, '!')}) {
    std::vector<tokenizer::Piece> pieces;
    const absl::Status s = (*re)->Split(text, {0, text.size()}, &pieces);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_FALSE(pieces.empty());
  }
}

TEST(HostileLimits, PackageSymlinkRefusedByVerifyPackageFiles) {
  testing::ScopedTempDir tmp;
  const fs::path pkg = tmp.path() / "pkg";
  fs::create_directories(pkg);
  ASSERT_TRUE(WriteStringToFile(tmp.path() / "secret", "abc").ok());
  fs::create_symlink(tmp.path() / "secret", pkg / "tokenizer.txt");
  Manifest m;
  m.files.push_back({"tokenizer.txt", "tokenizer", 3, 0});
  const absl::Status s = VerifyPackageFiles(pkg, m, /*verify_checksums=*/false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("symbolic link"), std::string::npos) << s;
}

TEST(HostileLimits, ReadFileToStringRefusesFifoAndDevices) {
  testing::ScopedTempDir tmp;
  const fs::path fifo = tmp.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto a = ReadFileToString(fifo);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  const auto b = ReadFileToString("/dev/zero");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace llmpack::hostile
