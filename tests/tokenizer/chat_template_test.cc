#include "tokenizer/chat_template.h"

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/test_paths.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace llmpack::tokenizer {
namespace {

using ::llmpack::testing::FixturesDir;
using ::llmpack::testing::ScopedTempDir;
using json = nlohmann::json;

// The bpe4k model folder's chat template, carried into the config by
// ConvertTokenizerDir, renders and tokenizes to the recorded ids.
TEST(ChatTemplate, Bpe4kChatCase) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  ModelConfig config;
  const auto out = tmp.path() / "tokenizer.txt";
  ASSERT_TRUE(
      ConvertTokenizerDir(FixturesDir() / "tiny-llama" / "hf", out, &config)
          .ok());
  ASSERT_FALSE(config.chat_template.empty());
  std::ifstream in(FixturesDir() / "tokenizers" / "bpe4k_chat_case.json");
  const json chat = json::parse(in);
  std::vector<ChatMessage> messages;
  for (const json& m : chat["messages"]) {
    messages.push_back(
        {m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  ChatTemplateOptions options;
  options.add_generation_prompt = true;
  auto prompt = RenderChatTemplate(config.chat_template, messages, options);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, chat["prompt"].get<std::string>());
  auto tok = Tokenizer::Load(out);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(*(*tok)->Encode(*prompt, /*add_special=*/false),
            chat["ids"].get<std::vector<int32_t>>());
}

// The tiny-llama folder: BOS from the post-processor, stop ids from
// generation_config.json and tokenizer_config.json.
TEST(ConvertTokenizerDir, FillsConfig) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  ModelConfig config;
  ASSERT_TRUE(ConvertTokenizerDir(FixturesDir() / "tiny-llama" / "hf",
                                  tmp.path() / "tokenizer.txt", &config)
                  .ok());
  EXPECT_EQ(config.bos_id, 0);
  EXPECT_TRUE(config.add_bos);
  EXPECT_THAT(config.eos_ids, ::testing::ElementsAre(3));
}

TEST(AddTokenizerToPackage, ListsFileAndFillsConfig) {
  LLMPACK_REQUIRE_FIXTURES();
  ScopedTempDir tmp;
  Manifest manifest;
  ASSERT_TRUE(AddTokenizerToPackage(FixturesDir() / "tiny-llama" / "hf",
                                    tmp.path(), &manifest)
                  .ok());
  ASSERT_EQ(manifest.files.size(), 1u);
  EXPECT_EQ(manifest.files[0].name, "tokenizer.txt");
  EXPECT_EQ(manifest.files[0].role, "tokenizer");
  EXPECT_EQ(manifest.files[0].size,
            std::filesystem::file_size(tmp.path() / "tokenizer.txt"));
  EXPECT_THAT(manifest.config.chat_template,
              ::testing::HasSubstr("<|im_start|>"));
  EXPECT_EQ(AddTokenizerToPackage(tmp.path(), tmp.path(), &manifest).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manifest.files.size(), 1u);
}

TEST(ConvertTokenizerDir, NotFoundWithoutTokenizer) {
  ScopedTempDir tmp;
  ModelConfig config;
  const absl::Status s =
      ConvertTokenizerDir(tmp.path(), tmp.path() / "tokenizer.txt", &config);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
}

// The Llama 3 template uses set, loop.index0, filters and bos_token.
TEST(ChatTemplate, Llama3Style) {
  const std::string tmpl =
      "{% set loop_messages = messages %}{% for message in loop_messages %}"
      "{% set content = '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
      "{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
      "{% endif %}{{ content }}{% endfor %}"
      "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}";
  ChatTemplateOptions options;
  options.bos_token = "<|begin_of_text|>";
  auto out = RenderChatTemplate(
      tmpl, {{"system", " Be brief. "}, {"user", "Hi"}}, options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Qwen 3's template (namespace, slices, split, is false, ...): earlier
// assistant turns lose their reasoning; enable_thinking=false adds an empty
// think block to the generation prompt.
TEST(ChatTemplate, Qwen3Template) {
  LLMPACK_REQUIRE_FIXTURES();
  std::ifstream in(FixturesDir() / "tokenizers" /
                   "qwen3_tokenizer_config.json");
  const std::string tmpl = json::parse(in)["chat_template"].get<std::string>();
  const json vars = {
      {"messages",
       {{{"role", "system"}, {"content", "S"}},
        {{"role", "user"}, {"content", "U1"}},
        {{"role", "assistant"}, {"content", "<think>\nr\n</think>\n\nA"}},
        {{"role", "user"}, {"content", "U2"}}}},
      {"add_generation_prompt", true},
      {"enable_thinking", false}};
  auto out = RenderJinjaTemplate(tmpl, vars);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(
      *out,
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
      "<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
      "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, SlicesNamespacesAndSplit) {
  auto out = RenderJinjaTemplate(
      "{% set ns = namespace(n=0) %}{% for x in xs[::-1] %}{% set ns.n = ns.n "
      "+ x %}"
      "{{ x }}{% endfor %}|{{ ns.n }}|{{ 'a/b/c'.split('/')[-1] }}|"
      "{{ xs[1:] | tojson }}|{{ '--x--'.strip('-') }}",
      {{"xs", {1, 2, 3}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "321|6|c|[2, 3]|x");
}

// Mistral / Llama 2 style: alternation check with %, raise_exception.
TEST(ChatTemplate, MistralStyleAlternation) {
  const std::string tmpl =
      "{{ bos_token }}{% for message in messages %}"
      "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
      "{% if message['role'] == 'user' %}"
      "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
      "{% elif message['role'] == 'assistant' %}"
      "{{ message['content'] + eos_token }}{% endif %}{% endfor %}";
  ChatTemplateOptions options;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  auto ok = RenderChatTemplate(
      tmpl, {{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, options);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "<s>[INST] a [/INST]b</s>[INST] c [/INST]");
  auto bad = RenderChatTemplate(tmpl, {{"user", "a"}, {"user", "b"}}, options);
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("must alternate"));
  auto math = RenderJinjaTemplate("{{ -7 // 2 }} {{ -7 % 2 }} {{ 3 * 4 }}",
                                  json::object());
  ASSERT_TRUE(math.ok()) << math.status();
  EXPECT_EQ(*math, "-4 1 12");
}

TEST(ChatTemplate, WhitespaceControlAndBranches) {
  const std::string tmpl =
      "{%- for m in messages %}\n"
      "  {%- if m.role == 'system' %}[S]{{ m.content }}\n"
      "  {%- elif m.role not in ['user'] %}[?]\n"
      "  {%- else %}[U]{{ m.content | upper }}\n"
      "  {%- endif %}\n"
      "{%- endfor %}\n"
      "{%- if add_generation_prompt %}[A]{% endif %}";
  auto out =
      RenderJinjaTemplate(tmpl, {{"messages",
                                  {{{"role", "system"}, {"content", "x"}},
                                   {{"role", "user"}, {"content", "hi"}},
                                   {{"role", "tool"}, {"content", "t"}}}},
                                 {"add_generation_prompt", true}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "[S]x[U]HI[?][A]");
  // trim_blocks / lstrip_blocks as transformers sets them (checked with
  // jinja2 3.1).
  auto blocks = RenderJinjaTemplate(
      "a\n  {% if x %}\n  b\n  {% endif %}\nc {# comment #}\nd", {{"x", true}});
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  EXPECT_EQ(*blocks, "a\n  b\nc d");
}

TEST(ChatTemplate, ErrorsNameTheConstruct) {
  auto unsupported =
      RenderJinjaTemplate("{% macro f() %}{% endmacro %}", json::object());
  EXPECT_FALSE(unsupported.ok());
  EXPECT_THAT(std::string(unsupported.status().message()),
              ::testing::HasSubstr("macro"));
  auto raised =
      RenderJinjaTemplate("{{ raise_exception('bad role') }}", json::object());
  EXPECT_FALSE(raised.ok());
  EXPECT_THAT(std::string(raised.status().message()),
              ::testing::HasSubstr("bad role"));
  EXPECT_FALSE(
      RenderJinjaTemplate("{% if x %}never closed", json::object()).ok());
}

}  // namespace
}  // namespace llmpack::tokenizer
