// Stop strings in streamed text. The stream is treated as if produced one byte at a time: the
// stop occurrence that *ends* first wins (on a tie, the longer one, i.e. the one starting first),
// and the output is everything before its start. This makes the result independent of how the
// text is cut into pieces: with stops "abcx" and "bc", the text "abcx" yields "a", because "bc"
// is complete before "abcx" is.
#include "engine/stop_matcher.h"

#include <algorithm>
#include <cstddef>
#include <utility>

namespace mixserve {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  stops_.erase(std::remove_if(stops_.begin(), stops_.end(), [](const std::string& s) { return s.empty(); }),
               stops_.end());
}

StopMatcher::Result StopMatcher::push(std::string_view piece) {
  Result result;
  if (stopped_) {
    result.stopped = true;
    return result;
  }
  const std::size_t checked = pending_.size();  // every end position up to here was checked before
  pending_.append(piece);
  const std::string_view text = pending_;

  // Earliest end position of a stop occurrence among the new bytes.
  for (std::size_t end = checked + 1; end <= text.size(); ++end) {
    std::size_t longest = 0;
    for (const std::string& stop : stops_) {
      if (stop.size() > end || stop.size() <= longest) continue;
      if (text.compare(end - stop.size(), stop.size(), stop) == 0) longest = stop.size();
    }
    if (longest > 0) {
      result.emit = pending_.substr(0, end - longest);
      result.stopped = true;
      stopped_ = true;
      pending_.clear();
      return result;
    }
  }

  // Hold back the longest suffix that is a proper prefix of some stop; everything before it can
  // never become part of a stop (a stop starting earlier would need a longer such suffix).
  std::size_t hold = 0;
  for (const std::string& stop : stops_) {
    const std::size_t max_len = std::min(stop.size() - 1, text.size());
    for (std::size_t len = max_len; len > hold; --len) {
      if (text.substr(text.size() - len) == std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  const std::size_t safe = text.size() - hold;
  result.emit = pending_.substr(0, safe);
  pending_.erase(0, safe);
  return result;
}

std::string StopMatcher::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace mixserve
