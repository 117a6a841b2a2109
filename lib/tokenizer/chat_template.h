// A small renderer for the Jinja chat templates of ChatML / Llama 3 style
// models (tokenizer_config.json "chat_template" or chat_template.jinja).
//
// Supported (as transformers renders them, with trim_blocks and
// lstrip_blocks): text, {{ expr }}, {# comments #}, "-" whitespace control,
// {% for x in expr %}...{% endfor %} with loop.index/index0/first/last/length,
// {% if %}/{% elif %}/{% else %}/{% endif %}, {% set name = expr %} and
// {% set ns.attr = expr %} on namespace(k=v, ...) objects.
// Expressions: string/integer/boolean/none literals, list literals,
// variables, a.b and a[expr] access, Python slices a[b:e:s], + - ~,
// integer * / // %,
// == != < > <= >=, in / not in, and/or/not,
// "is [not] defined|none|string|true|false", filters trim/length/upper/lower/
// tojson, string methods strip/lstrip/rstrip (optional chars), split,
// startswith/endswith/upper/lower, and raise_exception(msg). That covers
// ChatML, Llama 3 and Qwen 3 templates. Anything else (macros, loops with
// else, tests/filters not listed) is an error naming the construct.
// Stateless and thread-safe.
#ifndef LLMPACK_TOKENIZER_CHAT_TEMPLATE_H_
#define LLMPACK_TOKENIZER_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace llmpack::tokenizer {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
};

absl::StatusOr<std::string> RenderChatTemplate(
    const std::string& chat_template, const std::vector<ChatMessage>& messages,
    const ChatTemplateOptions& options);

// General form: `variables` is a JSON object of top-level names (messages,
// add_generation_prompt, bos_token, ...).
absl::StatusOr<std::string> RenderJinjaTemplate(
    const std::string& source, const nlohmann::json& variables);

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_CHAT_TEMPLATE_H_
