// Built-in string and sequence filters, with the semantics of jinja2/filters.py (3.1) and transformers' tojson.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_interpreter.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {

int64_t arg_int(const Value* v, int64_t fallback, std::string_view what) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_integral()) fail(ErrorCode::kInvalidArgument, what, " must be an integer, not ", type_name(*v));
  return v->as_int();
}

Value attr_path(const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(item, attribute);
  Value v = item;
  std::string_view path = attribute.as_string();
  for (;;) {
    const size_t dot = path.find('.');
    const std::string_view part = path.substr(0, dot);
    int64_t index = 0;
    const auto r = std::from_chars(part.data(), part.data() + part.size(), index);
    const bool numeric = !part.empty() && r.ec == std::errc() && r.ptr == part.data() + part.size();
    v = numeric ? get_item(v, Value(index)) : get_item(v, Value(part));
    if (dot == std::string_view::npos) return v;
    path = path.substr(dot + 1);
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value(ascii_lower(v.as_string())) : v;
}

namespace {

std::string arg_str(const Value* v, std::string_view fallback) {
  return v ? to_str(*v) : std::string(fallback);
}

Value make_string(Interpreter& in, std::string s) {
  in.check_size(s.size());
  return Value(std::move(s));
}

Value f_trim(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"chars"}, "trim");
  const std::string chars = p[0] && !p[0]->is_none() ? to_str(*p[0]) : std::string();
  return make_string(in, python_strip(to_str(v), p[0] && !p[0]->is_none() ? &chars : nullptr, true, true));
}

Value f_length(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "length");
  switch (v.kind()) {
    case Value::Kind::kUndefined: return int64_t{0};
    case Value::Kind::kString: return code_point_length(v.as_string());
    case Value::Kind::kList: return static_cast<int64_t>(v.as_list().items.size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.as_dict().size());
    default: fail(ErrorCode::kInvalidArgument, "object of type '", type_name(v), "' has no len()");
  }
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value f_tojson(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  JsonOptions o;
  o.ensure_ascii = arg_bool(p[0], false);
  if (p[1] && !p[1]->is_none()) {
    o.pretty = true;
    if (p[1]->is_string()) {
      o.indent = p[1]->as_string();
    } else {
      const int64_t width = arg_int(p[1], 0, "tojson indent");
      if (width > 64) fail(ErrorCode::kInvalidArgument, "tojson indent above 64 is not supported");
      o.indent.assign(static_cast<size_t>(std::max<int64_t>(width, 0)), ' ');
    }
    o.item_separator = ",";
  }
  if (p[2] && !p[2]->is_none()) {
    if (p[2]->kind() != Value::Kind::kList || p[2]->as_list().items.size() != 2 ||
        !p[2]->as_list().items[0].is_string() || !p[2]->as_list().items[1].is_string()) {
      fail(ErrorCode::kInvalidArgument, "tojson separators must be a pair of strings");
    }
    o.item_separator = p[2]->as_list().items[0].as_string();
    o.key_separator = p[2]->as_list().items[1].as_string();
  }
  o.sort_keys = arg_bool(p[3], false);
  return make_string(in, to_json(v, o));
}

Value f_upper(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "upper");
  return make_string(in, ascii_upper(to_str(v)));
}

Value f_lower(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "lower");
  return make_string(in, ascii_lower(to_str(v)));
}

Value f_capitalize(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "capitalize");
  return make_string(in, python_capitalize(to_str(v)));
}

// jinja2 do_title: words split at runs of "-", whitespace, "(", "{", "[", "<"; each capitalised.
Value f_title(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "title");
  std::string out;
  bool word_start = true;
  for (char32_t c : decode_utf8(to_str(v))) {
    const bool separator = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_python_space(c);
    std::string piece;
    append_utf8(piece, c);
    out += separator ? piece : word_start ? ascii_upper(piece) : ascii_lower(piece);
    word_start = separator;
  }
  return make_string(in, std::move(out));
}

Value f_default(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"default_value", "boolean"}, "default");
  const bool use_default = v.is_undefined() || (arg_bool(p[1], false) && !truthy(v));
  return use_default ? (p[0] ? *p[0] : Value("")) : v;
}

Value f_join(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"d", "attribute"}, "join");
  const std::string sep = arg_str(p[0], "");
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(p[1] && !p[1]->is_none() ? attr_path(item, *p[1]) : item);
    in.check_size(out.size());
  }
  return Value(std::move(out));
}

Value f_first(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "first");
  if (v.kind() == Value::Kind::kList && !v.as_list().items.empty()) return v.as_list().items.front();
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "last");
  if (v.kind() == Value::Kind::kList && !v.as_list().items.empty()) return v.as_list().items.back();
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_list(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "list");
  return Value::list(iterate(v));
}

Value dict_items(const Value& v) {
  if (v.is_undefined()) return Value::list({});
  if (v.kind() != Value::Kind::kDict)
    fail(ErrorCode::kInvalidArgument, "items filter: expected a mapping, got ", type_name(v));
  std::vector<Value> pairs;
  for (const auto& [key, value] : v.as_dict().items()) pairs.push_back(Value::list({Value(key), value}, true));
  return Value::list(std::move(pairs));
}

Value f_items(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "items");
  return dict_items(v);
}

Value f_dictsort(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"case_sensitive", "by", "reverse"}, "dictsort");
  const Value pairs = dict_items(v);
  const std::string by = arg_str(p[1], "key");
  if (by != "key" && by != "value") fail(ErrorCode::kInvalidArgument, "dictsort: 'by' must be 'key' or 'value'");
  const size_t pos = by == "key" ? 0 : 1;
  const bool cs = arg_bool(p[0], false);
  std::vector<Value> items = pairs.as_list().items;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return compare(sort_key(x.as_list().items[pos], cs), sort_key(y.as_list().items[pos], cs)) < 0;
  });
  if (arg_bool(p[2], false)) std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_replace(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"old", "new", "count"}, "replace");
  if (!p[0] || !p[1]) fail(ErrorCode::kInvalidArgument, "replace() needs the old and new strings");
  const std::string text = to_str(v);
  const std::string to = to_str(*p[1]);
  const int64_t count = arg_int(p[2], -1, "replace count");
  const size_t from_size = to_str(*p[0]).size();
  if (to.size() > from_size) {  // bound the result before building it
    const size_t hits = from_size ? text.size() / from_size : text.size() + 1;
    in.check_size(text.size() + hits * (to.size() - from_size));
  }
  return make_string(in, python_replace(text, to_str(*p[0]), to, count));
}

Value f_string(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "string");
  return make_string(in, to_str(v));
}

// select/reject (by_attr = false) and selectattr/rejectattr (by_attr = true).
Value select_impl(Interpreter& in, const Value& seq, const CallArgs& a, bool by_attr, bool keep_matches) {
  const char* name = by_attr ? (keep_matches ? "selectattr" : "rejectattr") : (keep_matches ? "select" : "reject");
  size_t next = 0;
  Value attribute;
  if (by_attr) {
    if (a.positional.empty()) fail(ErrorCode::kInvalidArgument, name, "() needs an attribute name");
    attribute = a.positional[next++];
  }
  TestFn test = nullptr;
  if (next < a.positional.size()) {
    const std::string test_name = to_str(a.positional[next++]);
    test = find_test(test_name);
    if (!test) fail(ErrorCode::kUnimplemented, name, "(): unsupported test '", test_name, "'");
  }
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end());
  test_args.keyword = a.keyword;
  std::vector<Value> out;
  for (const Value& item : iterate(seq)) {
    in.charge(1);
    const Value subject = by_attr ? attr_path(item, attribute) : item;
    const bool match = test ? test(in, subject, test_args) : truthy(subject);
    if (match == keep_matches) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(Interpreter& in, const Value& v, const CallArgs& a) {
  return select_impl(in, v, a, false, true);
}
Value f_reject(Interpreter& in, const Value& v, const CallArgs& a) {
  return select_impl(in, v, a, false, false);
}
Value f_selectattr(Interpreter& in, const Value& v, const CallArgs& a) {
  return select_impl(in, v, a, true, true);
}
Value f_rejectattr(Interpreter& in, const Value& v, const CallArgs& a) {
  return select_impl(in, v, a, true, false);
}

Value f_map(Interpreter& in, const Value& v, const CallArgs& a) {
  std::vector<Value> out;
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [key, value] : a.keyword) {
    if (key == "attribute") attribute = &value;
    if (key == "default") fallback = &value;
  }
  if (attribute) {
    for (const Value& item : iterate(v)) {
      Value r = attr_path(item, *attribute);
      out.push_back(r.is_undefined() && fallback ? *fallback : r);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty()) fail(ErrorCode::kInvalidArgument, "map() needs a filter name or attribute=");
  const std::string filter_name = to_str(a.positional[0]);
  const FilterFn filter = find_filter(filter_name);
  if (!filter) fail(ErrorCode::kUnimplemented, "map(): unsupported filter '", filter_name, "'");
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& item : iterate(v)) out.push_back(filter(in, item, rest));
  return Value::list(std::move(out));
}

Value f_reverse(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "reverse");
  if (v.is_string()) {
    std::vector<char32_t> cps = decode_utf8(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return make_string(in, encode_utf8(cps.data(), cps.data() + cps.size()));
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

// jinja2 do_indent (3.1).
Value f_indent(Interpreter& in, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"width", "first", "blank"}, "indent");
  std::string indentation;
  if (p[0] && p[0]->is_string()) {
    indentation = p[0]->as_string();
  } else {
    const int64_t width = arg_int(p[0], 4, "indent width");
    indentation.assign(static_cast<size_t>(std::clamp<int64_t>(width, 0, 256)), ' ');
  }
  const std::vector<std::string> lines = python_splitlines(to_str(v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    if (i > 0 && (arg_bool(p[2], false) || !lines[i].empty())) out += indentation;
    out += lines[i];
    in.check_size(out.size());
  }
  if (arg_bool(p[1], false)) out = indentation + out;
  return make_string(in, std::move(out));
}

Value f_escape(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "escape");
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return make_string(in, std::move(out));
}

Value f_safe(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "safe");
  return v.is_string() ? v : Value(to_str(v));
}

Value f_wordcount(Interpreter&, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "wordcount");
  return static_cast<int64_t>(python_split(to_str(v), nullptr, -1).size());
}

Value f_attr(Interpreter&, const Value& v, const CallArgs& a) {
  const auto p = bind_args(a, {"name"}, "attr");
  if (!p[0]) fail(ErrorCode::kInvalidArgument, "attr() needs an attribute name");
  return get_attr(v, to_str(*p[0]));
}

Value f_pprint(Interpreter& in, const Value& v, const CallArgs& a) {
  bind_args(a, {}, "pprint");
  return make_string(in, repr(v));
}

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

constexpr FilterEntry kFilters[] = {
    {"attr", f_attr},
    {"capitalize", f_capitalize},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"forceescape", f_escape},
    {"indent", f_indent},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"pprint", f_pprint},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"string", f_string},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const auto& f : kFilters) {
    if (f.name == name) return f.fn;
  }
  return find_number_filter(name);
}

}  // namespace mixserve::jinja
