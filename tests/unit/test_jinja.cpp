// Jinja interpreter: the language features one at a time. Expected strings follow jinja2 3.1 semantics
// with the settings of transformers' apply_chat_template (trim_blocks, lstrip_blocks, loopcontrols).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "common/error.h"
#include "model/jinja/jinja_template.h"

namespace mixserve::jinja {
namespace {

using ::testing::HasSubstr;

std::string render(std::string_view source, const Dict& context = {}, const RenderOptions& options = {}) {
  return Template(source).render(context, options);
}

// Renders and returns the error; fails the test when no error is thrown.
Error render_error(std::string_view source, const Dict& context = {}, const RenderOptions& options = {}) {
  try {
    const std::string out = render(source, context, options);
    ADD_FAILURE() << "expected an error for " << source << ", got output: " << out;
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "no error");
}

Dict messages_context() {
  Dict user;
  user.set("role", "user");
  user.set("content", "hi");
  Dict bot;
  bot.set("role", "assistant");
  bot.set("content", "hello");
  Dict ctx;
  ctx.set("messages", Value::list({Value::dict(user), Value::dict(bot)}));
  return ctx;
}

TEST(Jinja, TextAndOutputOfLiterals) {
  EXPECT_EQ(render("plain text"), "plain text");
  EXPECT_EQ(render("{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}"), "abcd");
  EXPECT_EQ(render("{{ none }}|{{ None }}|{{ true }}|{{ False }}|{{ 42 }}|{{ -7 }}"), "None|None|True|False|42|-7");
  EXPECT_EQ(render("{{ 1.0 }} {{ 0.5 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.0001 }} {{ 1_000 }} {{ 0x1F }}"),
            "1.0 0.5 1e+16 1e-05 0.0001 1000 31");
  EXPECT_EQ(render("{{ [1, 'a', none, true] }}{{ (1,) }}{{ (1, 2) }}{{ () }}{{ {'k': [2.5]} }}"),
            "[1, 'a', None, True](1,)(1, 2)(){'k': [2.5]}");
  EXPECT_EQ(render(R"({{ "it's" }}|{{ ["it's", 'q"', 'a\nb'] }})"), R"(it's|["it's", 'q"', 'a\nb'])");
  EXPECT_EQ(render(R"({{ '\t|\x41|\u00e9|\\|\q' }})"), "\t|A|\xC3\xA9|\\|\\q");
}

TEST(Jinja, CommentsAndTrailingNewline) {
  EXPECT_EQ(render("a{# comment {{ x }} #}b"), "ab");
  EXPECT_EQ(render("line\n"), "line");  // keep_trailing_newline=False drops one
  EXPECT_EQ(render("line\n\n"), "line\n");
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");  // newlines normalised
}

TEST(Jinja, TrimBlocksAndLstripBlocks) {
  // The newline after a block tag goes (trim_blocks); indentation before one goes (lstrip_blocks).
  EXPECT_EQ(render("a\n  {% if true %}\n  x\n  {% endif %}\nb"), "a\n  x\nb");
  // Not after {{ }}: only block and comment tags are affected.
  EXPECT_EQ(render("{{ 'v' }}\n  {{ 'w' }}\n"), "v\n  w");
  // Text before the tag on the same line keeps the spaces.
  EXPECT_EQ(render("x  {% if true %}y{% endif %}"), "x  y");
  EXPECT_EQ(render("  {# c #}\nz"), "z");
  // Only one newline is trimmed.
  EXPECT_EQ(render("{% if true %}\n\nx{% endif %}"), "\nx");
}

TEST(Jinja, WhitespaceControlModifiers) {
  EXPECT_EQ(render("a  \n  {{- 'b' -}}  \n  c"), "abc");
  EXPECT_EQ(render("a \n {%- if true -%} \n b \n {%- endif -%} \n c"), "abc");
  EXPECT_EQ(render("  {#- c -#}  x {# y #}\n z"), "x  z");
  // "+" keeps what lstrip_blocks / trim_blocks would remove.
  EXPECT_EQ(render("a\n  {%+ if true %}x{% endif %}"), "a\n  x");
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(render("{%- set x = 'a' -%}\n  {{- x -}}\n  {{ x }}  \n"), "aa  ");
}

TEST(Jinja, RawBlocks) {
  EXPECT_EQ(render("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
  EXPECT_EQ(render("a\n  {% raw %}\nq\n  {% endraw %}\nb"), "a\n\nq\nb");
}

TEST(Jinja, IfElifElse) {
  const char* src = "{% if x == 1 %}one{% elif x == 2 %}two{% else %}other{% endif %}";
  for (auto [x, want] : {std::pair{1, "one"}, std::pair{2, "two"}, std::pair{3, "other"}}) {
    Dict ctx;
    ctx.set("x", x);
    EXPECT_EQ(render(src, ctx), want);
  }
  EXPECT_EQ(render("{% if [] %}a{% endif %}{% if {} %}b{% endif %}{% if '' %}c{% endif %}{% if 0.0 %}d{% endif %}"),
            "");
  EXPECT_EQ(render("{% if [0] %}a{% endif %}{% if ' ' %}b{% endif %}{% if -1 %}c{% endif %}"), "abc");
}

TEST(Jinja, ForLoopVariables) {
  EXPECT_EQ(render("{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                   "{{ loop.revindex0 }}{{ loop.length }}{{ loop.first }}{{ loop.last }};{% endfor %}"),
            "10323TrueFalse;21213FalseFalse;32103FalseTrue;");
  EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}|{% endfor %}"),
            "<1>2|1<2>3|2<3>|");
  EXPECT_EQ(render("{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "ababa");
  // The loop variable of nested loops is the innermost one.
  EXPECT_EQ(render("{% for a in [1,2] %}{% for b in 'xy' %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}"),
            "121122");
  EXPECT_EQ(render("{{ loop }}|{{ loop is defined }}"), "|False");
}

TEST(Jinja, ForLoopForms) {
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1] %}x{% else %}empty{% endfor %}"), "x");
  EXPECT_EQ(render("{% for x in undefined_name %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(render("{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}"), "ba");  // dicts: keys, in order
  EXPECT_EQ(render("{% for c in 'h\xC3\xA9' %}[{{ c }}]{% endfor %}"), "[h][\xC3\xA9]");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}"), "a=1,b=2,");
  EXPECT_EQ(render("{% for (a, b) in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"), "37");
  // The filter runs before loop.* is computed: length and last see only the kept items.
  EXPECT_EQ(render("{% for x in range(6) if x is odd %}{{ x }}/{{ loop.length }}{{ loop.last }} {% endfor %}"),
            "1/3False 3/3False 5/3True ");
  EXPECT_EQ(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}"
                   "{% endif %}{{ x }}{% endfor %}"),
            "0134");
}

TEST(Jinja, ScopingFollowsJinja) {
  // A {% set %} inside a loop body is local to that iteration: each iteration sees the outer value.
  EXPECT_EQ(render("{% set c = 0 %}{% for i in [1,2] %}{{ c }}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}"), "01010");
  // if-blocks do not open a scope.
  EXPECT_EQ(render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");
  // namespace() is the way to carry state out of a loop.
  EXPECT_EQ(
      render("{% set ns = namespace(total=0, seen=false) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}"
             "{% set ns.seen = true %}{% endfor %}{{ ns.total }} {{ ns.seen }}"),
      "6 True");
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.index = 0 %}{{ ns.index }}{{ ns['index'] }}"), "00");
  EXPECT_EQ(render("{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}"), "12");
  const Error e = render_error("{% set d = {} %}{% set d.x = 1 %}");
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.what(), HasSubstr("namespace"));
  EXPECT_THAT(e.what(), HasSubstr("template:1:20"));
}

TEST(Jinja, SetForms) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}"), "12(1, 2)");
  EXPECT_EQ(render("{% set x %} inner {{ 1 }} {% endset %}[{{ x }}]"), "[ inner 1 ]");
  EXPECT_EQ(render("{% set y | upper | trim %} abc {% endset %}[{{ y }}]"), "[ABC]");
  EXPECT_EQ(render("{% filter upper %}hello {{ 'x' }}{% endfilter %}"), "HELLO X");
  EXPECT_EQ(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"), "3[]");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
  EXPECT_THAT(render_error("{% set a, b = [1] %}").what(), HasSubstr("not enough values to unpack"));
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro f(a, b=2) %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(1, b=3) }}{{ f(b=4, a=5) }}"),
            "[12][13][54]");
  EXPECT_EQ(render("{% macro g(a) %}<{{ a }}>{% endmacro %}{{ g() }}"), "<>");  // missing args are undefined
  EXPECT_EQ(render("{% set top = 'T' %}{% macro h() %}{{ top }}{% endmacro %}{{ h() }}"), "T");
  EXPECT_THAT(render_error("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}").what(), HasSubstr("takes 1 arguments"));
  EXPECT_THAT(render_error("{% macro f(a) %}{% endmacro %}{{ f(z=1) }}").what(), HasSubstr("no argument 'z'"));
  const Error e = render_error("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}");
  EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
}

TEST(Jinja, ArithmeticHasPythonSemantics) {
  EXPECT_EQ(render("{{ 7 / 2 }} {{ 6 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }}"),
            "3.5 3.0 3 -4 2 -2 3.0");
  EXPECT_EQ(render("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 + 2 * 3 - 4 }}"),
            "1024 0.5 64 4 3");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1 + 1.5 }} {{ true + 1 }} {{ -(3) }} {{ +4 }}"),
            "0.30000000000000004 2.5 2 -3 4");
  EXPECT_EQ(render("{{ 'ab' + 'c' }} {{ [1] + [2] }} {{ 'ab' * 3 }} {{ 2 * [0] }} {{ 'x' * -1 }}|"),
            "abc [1, 2] ababab [0, 0] |");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true ~ undefined_name }}"), "a1NoneTrue");
  EXPECT_THAT(render_error("{{ 1 / 0 }}").what(), HasSubstr("division by zero"));
  EXPECT_THAT(render_error("{{ 5 // 0 }}").what(), HasSubstr("by zero"));
  EXPECT_THAT(render_error("{{ 1 + 'a' }}").what(), HasSubstr("unsupported operand type(s) for +: 'int' and 'str'"));
  EXPECT_THAT(render_error("{{ 9223372036854775807 + 1 }}").what(), HasSubstr("integer overflow"));
  EXPECT_EQ(render_error("{{ '%s' % 1 }}").code(), ErrorCode::kUnimplemented);
}

TEST(Jinja, ComparisonsAndLogic) {
  EXPECT_EQ(render("{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 1 == 1.0 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 1 != '1' }}"),
            "TrueFalseTrueTrueTrueTrue");
  EXPECT_EQ(
      render("{{ 'b' in 'abc' }}{{ 'z' not in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 0} }}{{ 'x' in nothing }}"),
      "TrueTrueTrueTrueFalse");
  EXPECT_EQ(render("{{ 0 or 'x' }}|{{ 1 and [] }}|{{ none or none }}|{{ not 0 }}{{ not 1 == 2 }}"),
            "x|[]|None|TrueTrue");
  EXPECT_EQ(render("{{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }}{{ [1] == (1,) }}{{ undefined_a == undefined_b }}"),
            "TrueFalseTrue");
  EXPECT_EQ(render("{{ 'yes' if 1 else 'no' }}{{ 'yes' if 0 else 'no' }}[{{ 'yes' if 0 }}]"), "yesno[]");
  EXPECT_THAT(render_error("{{ 1 < 'a' }}").what(), HasSubstr("not supported between instances of 'int' and 'str'"));
  EXPECT_THAT(render_error("{{ 1 in 'abc' }}").what(), HasSubstr("requires string as left operand"));
}

TEST(Jinja, UndefinedBehavesLikeJinjaDefault) {
  EXPECT_EQ(render("[{{ nothing }}]{{ nothing is defined }}{{ nothing|length }}{% if not nothing %}F{% endif %}"),
            "[]False0F");
  EXPECT_EQ(render("{{ nothing|default('d') }}{{ ''|default('d') }}{{ ''|default('d', true) }}"), "dd");
  const Dict ctx = messages_context();
  EXPECT_EQ(render("{{ messages[0].tool_calls is defined }}{{ messages[0]['nope'] is defined }}"
                   "{{ messages[5] is defined }}{{ messages[0].content.content is defined }}",
                   ctx),
            "FalseFalseFalseFalse");
  EXPECT_EQ(render("{{ none.attr is defined }}"), "False");
  // Attribute access, arithmetic and calls on an undefined value fail with jinja2's message.
  for (const char* src : {"{{ nothing.attr }}", "{{ nothing['k'] }}", "{{ nothing + 1 }}", "{{ nothing() }}"}) {
    const Error e = render_error(src);
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << src;
    EXPECT_THAT(e.what(), HasSubstr("'nothing' is undefined")) << src;
  }
  EXPECT_THAT(render_error("{{ messages[0].missing.deeper }}", ctx).what(),
              HasSubstr("'dict object' has no attribute 'missing'"));
}

TEST(Jinja, AttributeItemAndSlice) {
  const Dict ctx = messages_context();
  EXPECT_EQ(
      render("{{ messages[0].role }}{{ messages[0]['content'] }}{{ messages[-1].role }}{{ messages.0.role }}", ctx),
      "userhiassistantuser");
  EXPECT_EQ(render("{{ messages[1:]|length }}{{ messages[:1][0].role }}{{ messages[::-1][0].role }}", ctx),
            "1userassistant");
  EXPECT_EQ(render("{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::2] }}|{{ 'abcdef'[-2:] }}|{{ 'abc'[:-1] }}|{{ 'abc'[10:] }}|"),
            "bcd|ace|ef|ab||");
  EXPECT_EQ(render("{{ 'h\xC3\xA9llo'[1] }}{{ 'h\xC3\xA9llo'[1:3] }}{{ 'h\xC3\xA9llo'|length }}"),
            "\xC3\xA9\xC3\xA9l5");  // code points, not bytes
  EXPECT_EQ(render("{{ [1, 2, 3][5] is defined }}{{ [1, 2, 3][-1] }}"), "False3");
  EXPECT_THAT(render_error("{{ [1][::0] }}").what(), HasSubstr("slice step cannot be zero"));
}

TEST(Jinja, RaiseException) {
  const Error e = render_error("{% if true %}\n  {{ raise_exception('Roles must alternate') }}{% endif %}");
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.what(), HasSubstr("Roles must alternate"));
  EXPECT_THAT(e.what(), HasSubstr("template:2:"));
}

TEST(Jinja, StrftimeNowUsesTheInjectedClock) {
  RenderOptions options;
  options.now = [] {
    std::tm tm{};
    tm.tm_year = 2024 - 1900;
    tm.tm_mon = 6;  // July
    tm.tm_mday = 26;
    tm.tm_wday = 5;
    return tm;
  };
  EXPECT_EQ(
      render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%A') }}", {}, options),
      "26 Jul 2024|2024-07-26|Friday");
  EXPECT_THAT(render_error("{{ strftime_now('%Q') }}").what(), HasSubstr("unsupported directive"));
}

TEST(Jinja, SyntaxErrorsNameThePosition) {
  struct Case {
    const char* source;
    ErrorCode code;
    const char* message;
  };
  const Case cases[] = {
      {"{% if %}", ErrorCode::kInvalidArgument, "template:1:7: expected an expression"},
      {"ab\n{% for x in y %}", ErrorCode::kInvalidArgument, "template:2:4: 'for' block is never closed"},
      {"{{ 'abc' }", ErrorCode::kInvalidArgument, "template:1:10: unexpected '}'"},
      {"{{ 'abc }}", ErrorCode::kInvalidArgument, "template:1:4: unterminated string"},
      {"x {# never", ErrorCode::kInvalidArgument, "template:1:3: unterminated comment"},
      {"{{ 1 ", ErrorCode::kInvalidArgument, "template:1:1: unterminated '{{' tag"},
      {"{% endif %}", ErrorCode::kInvalidArgument, "unknown tag 'endif'"},
      {"{% frobnicate %}", ErrorCode::kInvalidArgument, "template:1:4: unknown tag 'frobnicate'"},
      {"{{ a $ b }}", ErrorCode::kInvalidArgument, "template:1:6: unexpected character '$'"},
      {"{% break %}", ErrorCode::kInvalidArgument, "outside of a for loop"},
      {"{{ f(a=1, 2) }}", ErrorCode::kInvalidArgument, "positional argument follows keyword"},
      {"\n\n  {% include 'x.j2' %}", ErrorCode::kUnimplemented,
       "template:3:6: the '{% include %}' tag is not supported"},
      {"{% extends 'base' %}", ErrorCode::kUnimplemented, "'{% extends %}' tag is not supported"},
      {"{% call m() %}{% endcall %}", ErrorCode::kUnimplemented, "'{% call %}'"},
      {"{% for x in y recursive %}{% endfor %}", ErrorCode::kUnimplemented, "recursive for loops"},
      {"{{ x|wordwrap }}", ErrorCode::kUnimplemented, "template:1:6: unsupported filter 'wordwrap'"},
      {"{{ x is frob }}", ErrorCode::kUnimplemented, "unsupported test 'frob'"},
      {"{{ f(*args) }}", ErrorCode::kUnimplemented, "*args"},
  };
  for (const Case& c : cases) {
    try {
      Template t(c.source);
      ADD_FAILURE() << "no error for " << c.source;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), c.code) << c.source << " -> " << e.what();
      EXPECT_THAT(e.what(), HasSubstr(c.message)) << c.source;
    }
  }
}

TEST(Jinja, RuntimeErrorsNameThePosition) {
  const Error e = render_error("line one\n{% for x in 5 %}{% endfor %}");
  EXPECT_THAT(e.what(), HasSubstr("template:2:"));
  EXPECT_THAT(e.what(), HasSubstr("'int' object is not iterable"));
  EXPECT_THAT(render_error("{{ 'abc'.append(1) }}").what(), HasSubstr("has no attribute 'append'"));
  EXPECT_THAT(render_error("{{ [1].append(2) }}").what(), HasSubstr("immutable"));
  EXPECT_THAT(render_error("{{ {'a': 1}.update({}) }}").what(), HasSubstr("immutable"));
  EXPECT_THAT(render_error("{{ 'x'() }}").what(), HasSubstr("'str' object is not callable"));
}

TEST(Jinja, LimitsStopRunawayTemplates) {
  RenderOptions small;
  small.max_work = 100000;
  small.max_output_bytes = 1 << 16;
  const Error loops =
      render_error("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", {}, small);
  EXPECT_EQ(loops.code(), ErrorCode::kResourceExhausted);
  const Error output = render_error("{% for a in range(10000) %}xxxxxxxxxx{% endfor %}", {}, small);
  EXPECT_EQ(output.code(), ErrorCode::kResourceExhausted);
  EXPECT_THAT(output.what(), HasSubstr("output exceeds"));
  EXPECT_EQ(render_error("{{ 'x' * 100000000000 }}", {}, small).code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(
      render_error(
          "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", {},
          small)
          .code(),
      ErrorCode::kResourceExhausted);
  EXPECT_EQ(render_error("{{ range(1000000) }}").code(), ErrorCode::kResourceExhausted);
  // Values cannot nest without bound (printing or comparing them would recurse too deep).
  EXPECT_EQ(render_error("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}")
                .code(),
            ErrorCode::kResourceExhausted);
  // A namespace that contains itself is fine to build and to print (and is not leaked).
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns.me|length }}"), "1");
  // Parsing bounds nesting too.
  const std::string deep = "{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}";
  EXPECT_THAT(render_error(deep).what(), HasSubstr("nested deeper"));
  std::string chain = "{{ 1";
  for (int i = 0; i < 2000; ++i) chain += " + 1";
  EXPECT_THAT(render_error(chain + " }}").what(), HasSubstr("nested deeper"));
  std::string blocks;
  for (int i = 0; i < 200; ++i) blocks += "{% if true %}";
  EXPECT_THAT(render_error(blocks).what(), HasSubstr("nested deeper"));
}

TEST(Jinja, TemplatesRenderConcurrently) {
  const Template t("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}");
  const Dict ctx = messages_context();
  std::string a, b;
  std::thread ta([&] {
    for (int i = 0; i < 200; ++i) a = t.render(ctx);
  });
  std::thread tb([&] {
    for (int i = 0; i < 200; ++i) b = t.render(ctx);
  });
  ta.join();
  tb.join();
  EXPECT_EQ(a, "user:hi;assistant:hello;");
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace mixserve::jinja
