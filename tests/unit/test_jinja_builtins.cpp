// Jinja filters, tests, str/dict methods and tojson. Expected strings follow jinja2 3.1's filters and
// tests, Python's str methods and json.dumps (transformers' tojson: ensure_ascii=False).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "model/jinja/jinja_template.h"

namespace mixserve::jinja {
namespace {

using ::testing::HasSubstr;

std::string render(std::string_view source) {
  return Template(source).render({});
}

std::string error_of(std::string_view source) {
  try {
    return "no error: " + render(source);
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(JinjaFilters, StringFilters) {
  EXPECT_EQ(render("[{{ '  hi \n'|trim }}][{{ 'xxhixx'|trim('x') }}][{{ '\xE3\x80\x80hi\xC2\xA0'|trim }}]"),
            "[hi][hi][hi]");  // Python whitespace includes U+3000 and U+00A0
  EXPECT_EQ(render("{{ 'abc'|upper }}{{ 'ABC'|lower }}{{ 'hELLO wORLD'|capitalize }}"), "ABCabcHello world");
  EXPECT_EQ(render("{{ 'hello world-foo (bar'|title }}|{{ \"they're\"|title }}"), "Hello World-Foo (Bar|They're");
  EXPECT_EQ(render("{{ 'a-b-c'|replace('-', '+') }}{{ 'a-b-c'|replace('-', '', 1) }}{{ 'ab'|replace('', '.') }}"),
            "a+b+cab-c.a.b.");
  EXPECT_EQ(render("{{ 42|string }}{{ [1]|string }}{{ none|string }}|{{ nothing|string }}|"), "42[1]None||");
  EXPECT_EQ(render("{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(first=true) }}|{{ 'a\n\nb'|indent(1, blank=true) }}"),
            "a\n  b\n\n  c|    a\n    b|a\n \n b");
  EXPECT_EQ(render("{{ '<a href=\"x\">&\\'</a>'|e }}"), "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(render("{{ 'one two  three'|wordcount }}{{ 'ab\xC3\xA9'|reverse }}"),
            "3\xC3\xA9"
            "ba");
}

TEST(JinjaFilters, SequenceFilters) {
  EXPECT_EQ(render("{{ [1, 2, 3]|length }}{{ 'h\xC3\xA9'|length }}{{ {'a': 1}|length }}{{ [1, 2]|count }}"), "3212");
  EXPECT_EQ(render("{{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }}{{ 'abc'|first }}[{{ []|first }}]"), "13a[]");
  EXPECT_EQ(
      render("{{ [1, 2]|join(', ') }}|{{ ['a', 'b']|join }}|{{ [{'n': 'x'}, {'n': 'y'}]|join('-', attribute='n') }}"),
      "1, 2|ab|x-y");
  EXPECT_EQ(render("{{ 'ab'|list }}{{ {'k': 1, 'j': 2}|list }}{{ (1, 2)|list }}"), "['a', 'b']['k', 'j'][1, 2]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|items|list }}{{ nothing|items|list }}"), "[('b', 1), ('a', 2)][]");
  EXPECT_EQ(render("{{ {'b': 1, 'A': 2, 'c': 0}|dictsort }}{{ {'b': 1, 'a': 2}|dictsort(by='value', reverse=true) }}"),
            "[('A', 2), ('b', 1), ('c', 0)][('a', 2), ('b', 1)]");
  EXPECT_EQ(render("{{ ['b', 'A', 'c']|sort }}{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}{{ [3, 1, "
                   "2]|sort(reverse=true) }}"),
            "['A', 'b', 'c']['A', 'b', 'c'][3, 2, 1]");
  EXPECT_EQ(render("{{ [{'n': 2}, {'n': 1}]|sort(attribute='n')|map(attribute='n')|list }}"), "[1, 2]");
  EXPECT_EQ(render("{{ ['a', 'A', 'b', 'a']|unique|list }}{{ [3, 1, 3]|unique|list }}"), "['a', 'b'][3, 1]");
  EXPECT_EQ(
      render("{{ [1, 5, 3]|max }}{{ [4, 2, 6]|min }}{{ [1, 2, 3]|sum }}{{ [{'v': 2}, {'v': 3}]|sum(attribute='v') }}"),
      "5265");
  EXPECT_EQ(render("{{ [1, 2, 3]|reverse|list }}{{ ['a', 'b']|map('upper')|list }}"), "[3, 2, 1]['A', 'B']");
  EXPECT_EQ(render("{{ [{'r': 'u'}, {'x': 1}]|map(attribute='r', default='?')|list }}"), "['u', '?']");
}

TEST(JinjaFilters, SelectAndReject) {
  const std::string msgs =
      "{% set m = [{'role': 'system'}, {'role': 'user', 'n': 1}, {'role': 'assistant'}, {'role': 'user', 'n': 2}] %}";
  EXPECT_EQ(render(msgs + "{{ m|selectattr('role', 'equalto', 'user')|map(attribute='n')|list }}"), "[1, 2]");
  EXPECT_EQ(render(msgs + "{{ m|rejectattr('role', 'equalto', 'user')|map(attribute='role')|join(',') }}"),
            "system,assistant");
  EXPECT_EQ(render(msgs + "{{ m|selectattr('n')|list|length }}{{ m|selectattr('n', 'defined')|list|length }}"), "22");
  EXPECT_EQ(render("{{ [1, 2, 3, 4]|select('odd')|list }}{{ [0, 1, '', 'a']|select|list }}"), "[1, 3][1, 'a']");
  EXPECT_EQ(render("{{ ['code_interpreter', 'brave_search']|reject('equalto', 'code_interpreter')|join(', ') }}"),
            "brave_search");
  EXPECT_THAT(error_of("{{ [1]|select('frob')|list }}"), HasSubstr("unsupported test 'frob'"));
}

TEST(JinjaFilters, NumberFilters) {
  EXPECT_EQ(
      render("{{ '42'|int }}{{ ' -7 '|int }}{{ '42.9'|int }}{{ 'x'|int }}{{ 'x'|int(5) }}{{ 3.99|int }}{{ true|int }}"),
      "42-7420531");
  EXPECT_EQ(render("{{ '0x1A'|int(0, 16) }}{{ '1_000'|int }}{{ '0b101'|int(0, 2) }}"), "2610005");
  EXPECT_EQ(render("{{ '3.5'|float }} {{ 2|float }} {{ 'nope'|float }} {{ '1e3'|float }}"), "3.5 2.0 0.0 1000.0");
  // round() is Python's: half to even on the exact binary value; ints stay ints.
  EXPECT_EQ(render("{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ 2.1|round(0, 'ceil') }} "
                   "{{ 2.9|round(method='floor') }} {{ -2.5|round }}"),
            "2.0 4.0 2.67 3 3.0 2.0 -2.0");
  EXPECT_EQ(render("{{ -3|abs }}{{ -2.5|abs }}"), "32.5");
}

TEST(JinjaFilters, ToJsonMatchesPythonJsonDumps) {
  EXPECT_EQ(render("{{ [1, 2.5, 'x', none, true, {'k': [1]}]|tojson }}"), R"([1, 2.5, "x", null, true, {"k": [1]}])");
  EXPECT_EQ(render("{{ {'a': 1, 'b': [], 'c': {}}|tojson(indent=4) }}"),
            "{\n    \"a\": 1,\n    \"b\": [],\n    \"c\": {}\n}");
  EXPECT_EQ(render("{{ {'a': [1, {'b': 'c'}]}|tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"c\"\n    }\n  ]\n}");
  EXPECT_EQ(render("{{ {'z': 1, 'a': 2}|tojson(sort_keys=true) }}{{ {'a': 1, 'b': 2}|tojson(separators=[',', ':']) }}"),
            R"({"a": 2, "z": 1}{"a":1,"b":2})");
  // ensure_ascii=False keeps UTF-8; escapes are json.dumps's (lowercase \u00XX).
  EXPECT_EQ(render(R"({{ "a\tb\\c\"d\u0001\u00e9\u65e5"|tojson }})"), "\"a\\tb\\\\c\\\"d\\u0001\xC3\xA9\xE6\x97\xA5\"");
  EXPECT_EQ(render(R"({{ "\u00e9\U0001F600"|tojson(ensure_ascii=true) }})"), R"("\u00e9\ud83d\ude00")");
  EXPECT_EQ(render("{{ 1e16|tojson }} {{ 0.1|tojson }} {{ 3.0|tojson }} {{ ''|tojson }}"), "1e+16 0.1 3.0 \"\"");
  EXPECT_THAT(error_of("{{ nothing|tojson }}"), HasSubstr("not JSON serializable"));
  EXPECT_THAT(error_of("{{ namespace()|tojson }}"), HasSubstr("not JSON serializable"));
}

TEST(JinjaTests, TypeAndValueTests) {
  EXPECT_EQ(render("{{ 'x' is string }}{{ 1 is string }}{{ 1 is number }}{{ true is number }}{{ true is integer }}"
                   "{{ 1.5 is float }}{{ 1 is integer }}{{ true is boolean }}"),
            "TrueFalseTrueTrueFalseTrueTrueTrue");
  EXPECT_EQ(render("{{ none is none }}{{ 0 is none }}{{ none is not none }}{{ true is true }}{{ 1 is true }}{{ false "
                   "is false }}"),
            "TrueFalseFalseTrueFalseTrue");
  EXPECT_EQ(render("{{ {} is mapping }}{{ [] is mapping }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ {} is iterable }}"
                   "{{ nothing is iterable }}{{ [] is sequence }}"),
            "TrueFalseTrueFalseTrueTrueTrue");
  EXPECT_EQ(render("{{ range is callable }}{{ 'x' is callable }}{{ 1 is odd }}{{ 2 is even }}{{ 9 is divisibleby 3 }}"
                   "{{ 9 is divisibleby(4) }}"),
            "TrueFalseTrueTrueTrueFalse");
  EXPECT_EQ(render("{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 5 is gt 3 }}{{ 5 is lt 3 }}{{ 3 is ge 3 }}"
                   "{{ 2 is le 1 }}{{ 2 is in [1, 2] }}"),
            "TrueFalseTrueTrueFalseTrueFalseTrue");
  EXPECT_EQ(
      render("{{ 'abc' is lower }}{{ 'aBc' is lower }}{{ 'ABC' is upper }}{{ 1 is sameas 1 }}{{ none is sameas none }}"
             "{{ 'upper' is filter }}{{ 'odd' is test }}"),
      "TrueFalseTrueTrueTrueTrueTrue");
  EXPECT_THAT(error_of("{{ 1 is eq }}"), HasSubstr("takes exactly one argument"));
}

TEST(JinjaMethods, StringMethods) {
  EXPECT_EQ(render("[{{ '  x '.strip() }}][{{ '  x '.lstrip() }}][{{ '  x '.rstrip() }}][{{ 'xyx'.strip('x') }}]"),
            "[x][x ][  x][y]");
  EXPECT_EQ(
      render(
          "{{ '  a b  '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,c'.split(',', 1) }}{{ ' a  b c '.split(none, 1) }}"),
      "['a', 'b']['a', 'b', '', 'c']['a', 'b,c']['a', 'b c ']");
  EXPECT_EQ(render("{{ 'x</think>\n\nAnswer'.split('</think>')[-1] }}"), "\n\nAnswer");
  EXPECT_EQ(render("{{ 'Hi'.startswith('H') }}{{ 'Hi'.endswith(('x', 'i')) }}{{ 'Hi'.startswith('i') }}"),
            "TrueTrueFalse");
  EXPECT_EQ(render("{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'hello wORLD'.title() }}{{ 'they\\'re'.title() }}{{ "
                   "'aB'.capitalize() }}"),
            "ABabHello WorldThey'ReAb");
  EXPECT_EQ(render("{{ 'a.b.c'.replace('.', '/') }}{{ 'a.b.c'.replace('.', '', 1) }}"), "a/b/cab.c");
  EXPECT_EQ(render("{{ '\xC3\xA9"
                   "ab'.find('b') }}{{ 'abc'.find('z') }}{{ 'abab'.rfind('ab') }}{{ 'aaa'.count('a') }}"),
            "2-123");
  EXPECT_EQ(render("{{ ', '.join(['a', 'b']) }}{{ '123'.isdigit() }}{{ 'ab1'.isalpha() }}{{ ' \t'.isspace() }}"),
            "a, bTrueFalseTrue");
  EXPECT_EQ(render("{{ 'a\nb\r\nc'.splitlines() }}"), "['a', 'b', 'c']");
  EXPECT_THAT(error_of("{{ ', '.join([1]) }}"), HasSubstr("expected str instance, int found"));
  EXPECT_THAT(error_of("{{ 'a'.split('') }}"), HasSubstr("empty separator"));
  EXPECT_THAT(error_of("{{ '{}'.format(1) }}"), HasSubstr("not supported"));
}

TEST(JinjaMethods, DictAndListMethods) {
  EXPECT_EQ(render("{% set d = {'a': 1, 'b': 2} %}{{ d.items()|list }}{{ d.keys()|list }}{{ d.values()|list }}"),
            "[('a', 1), ('b', 2)]['a', 'b'][1, 2]");
  EXPECT_EQ(
      render("{% set d = {'a': 1} %}{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 7) }}{{ d['items'] is callable }}"),
      "1None7True");
  EXPECT_EQ(render("{{ [1, 2, 1].count(1) }}{{ ['a', 'b'].index('b') }}"), "21");
  EXPECT_EQ(render("{% for k, v in {'x': 1, 'return': 2}.items() if k != 'return' %}{{ k }}{{ v }}{% endfor %}"), "x1");
  EXPECT_THAT(error_of("{{ {'a': 1}.pop('a') }}"), HasSubstr("immutable"));
  EXPECT_THAT(error_of("{{ [1].sort() }}"), HasSubstr("immutable"));
}

TEST(JinjaGlobals, RangeDictNamespace) {
  EXPECT_EQ(render("{{ range(3)|list }}{{ range(1, 7, 2)|list }}{{ range(3, 0, -1)|list }}{{ range(0)|list }}"),
            "[0, 1, 2][1, 3, 5][3, 2, 1][]");
  EXPECT_EQ(render("{{ dict(a=1, b='x') }}{{ dict({'k': 2}) }}"), "{'a': 1, 'b': 'x'}{'k': 2}");
  EXPECT_THAT(error_of("{{ range(1, 2, 0) }}"), HasSubstr("step must not be zero"));
  EXPECT_THAT(error_of("{{ range(200000)|length }}"), HasSubstr("range() too big"));
  EXPECT_THAT(error_of("{{ namespace(1) }}"), HasSubstr("must be a mapping"));
}

}  // namespace
}  // namespace mixserve::jinja
