// The control channel's messages: what goes on the wire is what the daemon and the CLI have always
// exchanged (one JSON object, these keys), every request survives the round trip, and a request of the
// wrong shape is refused with the key and the type it needed, as an invalid request (the client exits 2).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "control.h"
#include "messages.h"

namespace xdpp::host_test {
namespace {

using nlohmann::json;
using namespace xdpp::control;

TEST(Messages, RequestsKeepTheirWireFormat) {
  Swap swap;
  swap.stage = "lb";
  swap.object = "/opt/lb.bpf.o";
  swap.reset_state = true;
  EXPECT_EQ(to_json(Request{swap}),
            json::parse(R"({"op":"swap","stage":"lb","object":"/opt/lb.bpf.o","reset_state":true})"));
  EXPECT_EQ(to_json(Request{Set{.stage = "f", .assignments = {"a=1", "b+=2"}, .reset_state = false}}),
            json::parse(R"({"op":"set","stage":"f","assignments":["a=1","b+=2"],"reset_state":false})"));
  EXPECT_EQ(to_json(Request{Reload{.file = "/etc/p.toml"}}), json::parse(R"({"op":"reload","file":"/etc/p.toml"})"));
}

TEST(Messages, RequestsRoundTrip) {
  Swap swap;
  swap.stage = "parse";
  swap.plugin = "/p/parse.so";
  for (const Request& request : {Request{swap}, Request{Set{.stage = "x", .assignments = {"k=v"}, .reset_state = true}},
                                 Request{Reload{.file = "f.toml"}}}) {
    auto back = request_from_json(to_json(request));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(to_json(*back), to_json(request));
  }
}

TEST(Messages, WrongShapesAreNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {R"([1,2])", "a request is a JSON object"},
      {R"({"stage":"x"})", "key 'op' is missing"},
      {R"({"op":7})", "key 'op' must be a string"},
      {R"({"op":"explode"})", "unknown request 'explode'"},
      {R"({"op":"swap"})", "key 'stage' is missing"},
      {R"({"op":"set","stage":7,"assignments":"x"})", "key 'stage' must be a string"},
      {R"({"op":"set","stage":"a","assignments":[null]})", "key 'assignments' must be an array of strings"},
      {R"({"op":"swap","stage":"a","reset_state":"yes"})", "key 'reset_state' must be a boolean"},
      {R"({"op":"reload","file":["a"]})", "key 'file' must be a string"},
  };
  for (const auto& [text, message] : cases) {
    auto request = request_from_json(json::parse(text));
    ASSERT_FALSE(request) << text;
    EXPECT_EQ(request.error().message, message) << text;
  }
}

TEST(Messages, ControlReplyAnswersBadRequestsAsInvalid) {
  int calls = 0;
  auto handler = [&](const Request&) {
    ++calls;
    return Reply::success("done", 1.5, 2.5);
  };
  auto reply = json::parse(control_reply(R"({"op":"set","stage":7})", handler));
  EXPECT_EQ(reply, json::parse(R"({"ok":false,"error":"bad request: key 'stage' must be a string","invalid":true})"));
  EXPECT_EQ(calls, 0);
  reply = json::parse(control_reply(R"({"op":"reload"})", handler));
  EXPECT_EQ(reply, json::parse(R"({"ok":true,"message":"done","latency_ms":1.5,"total_ms":2.5})"));
  EXPECT_EQ(calls, 1);
}

TEST(Messages, RepliesRoundTrip) {
  Reply live = Reply::failure("state file not rewritten");
  live.live = true;
  for (Reply reply : {Reply::success("swapped stage 'lb'", 0.8, 1.2), Reply::failure("no stage 'x'", true), live}) {
    auto back = reply_from_json(to_json(reply));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(to_json(*back), to_json(reply));
  }
  EXPECT_FALSE(reply_from_json(json::parse(R"({"message":"no ok"})")));
}

}  // namespace
}  // namespace xdpp::host_test
