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
// Limits: a template comes with an untrusted package, so one render may do
// at most kChatTemplateMaxWork units of work (a node rendered, a value
// node copied or built, 8 per loop iteration; strings count one per 64
// bytes),
// produce at most kChatTemplateMaxOutputBytes (also the cap of any string
// value) and nest blocks or expressions at most 64 deep. Exceeding one is a
// ResourceExhausted error naming the limit, never a hang or an exhausted
// machine.
// Stateless and thread-safe.
#ifndef LLMPACK_TOKENIZER_CHAT_TEMPLATE_H_
#define LLMPACK_TOKENIZER_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace llmpack::tokenizer {

// Far above what real templates need (a few hundred units per message, a
// prompt of a few hundred KB); 2^22 value nodes stay under a second of work
// and a few hundred MB even when every unit is a freshly built node.
inline constexpr uint64_t kChatTemplateMaxWork = uint64_t{1} << 22;
inline constexpr size_t kChatTemplateMaxOutputBytes = size_t{16} << 20;

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
