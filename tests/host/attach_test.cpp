// Attach errors name the cause and the remedy (host/core/attach.h): each cause provoked for real on interfaces
// in a network namespace of the test's own, and the message checked. A bpf_link attach gets no kernel
// message, so these are the only explanation a user sees.
#include <gtest/gtest.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "attach.h"
#include "bpf_object.h"
#include "host_test_util.h"
#include "interface.h"

namespace xdpp::host_test {
namespace {

// EXPECT that `text` contains `part`, showing the whole text when it does not.
#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << "in: " << (text)

const std::string kFixture = std::string(XDPP_TEST_FIXTURE_BPF_DIR) + "/attach_fixture.bpf.o";

class AttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates a network namespace and attaches XDP programs";
    netns_ = std::make_unique<VethNamespace>();
    ASSERT_EQ(netns_->error(), "") << "cannot set up the veth pair";
    // This test process moves into the namespace: the attach calls below work on its interfaces.
    ASSERT_TRUE(enter_netns(netns_->name())) << "cannot enter " << netns_->name();
    object_ = bpf_object__open_file(kFixture.c_str(), nullptr);
    ASSERT_NE(object_, nullptr) << kFixture;
    ASSERT_EQ(bpf_object__load(object_), 0) << "loading " << kFixture;
  }
  void TearDown() override {
    if (object_) bpf_object__close(object_);
    netns_.reset();
  }
  int prog(const char* name) { return bpf_program__fd(bpf_object__find_program_by_name(object_, name)); }
  static void ip(const std::string& command) {
    ASSERT_EQ(std::system(("ip " + command).c_str()), 0) << "ip " << command;
  }
  static InterfaceInfo interface(const std::string& name) {
    auto found = lookup_interface(name);
    EXPECT_TRUE(found) << name;
    return found ? *found : InterfaceInfo{};
  }
  // Attaches and expects a failure; returns its message.
  std::string attach_error(int fd, bool multi_buffer, const std::string& name, AttachMode mode) {
    std::string reason;
    auto link = attach_xdp_link(fd, multi_buffer, interface(name), mode, reason);
    if (link) {
      ::close(*link);
      ADD_FAILURE() << "attaching to " << name << " succeeded";
      return "";
    }
    return link.error().message;
  }

  std::unique_ptr<VethNamespace> netns_;
  bpf_object* object_ = nullptr;
};

// A veth whose peer has MTU 9000: a single-buffer program cannot attach natively ("Peer MTU is too large
// to set XDP" for ip link), a multi-buffer aware one can, and at MTU 1500 both can.
TEST_F(AttachTest, MtuTooLargeForSingleBufferProgram) {
  ip(std::string("link set dev ") + VethNamespace::kVeth + " mtu 9000");
  ip(std::string("link set dev ") + VethNamespace::kPeer + " mtu 9000");
  const std::string message = attach_error(prog("single_buffer"), false, VethNamespace::kVeth, AttachMode::native);
  EXPECT_CONTAINS(message, ("attaching to xdpt0 in native mode"));
  EXPECT_CONTAINS(message, ("MTU 9000 of xdpt0"));
  EXPECT_CONTAINS(message, ("needs a multi-buffer aware program (SEC(\"xdp.frags\")); this one is SEC(\"xdp\")"));
  EXPECT_CONTAINS(message, ("ip link set dev xdpt0 mtu 1500"));

  AttachMode mode = AttachMode::native;
  std::string reason;
  auto link = attach_xdp_link(prog("multi_buffer"), true, interface(VethNamespace::kVeth), mode, reason);
  ASSERT_TRUE(link) << link.error().message;
  ::close(*link);

  ip(std::string("link set dev ") + VethNamespace::kPeer + " mtu 1500");
  mode = AttachMode::native;
  link = attach_xdp_link(prog("single_buffer"), false, interface(VethNamespace::kVeth), mode, reason);
  ASSERT_TRUE(link) << link.error().message;
  ::close(*link);
}

// A program attached through netlink (as `ip link set ... xdpdrv` does): its id, and how to remove it.
TEST_F(AttachTest, AnotherProgramAttachedWithIpLink) {
  const InterfaceInfo veth = interface(VethNamespace::kVeth);
  ASSERT_EQ(bpf_xdp_attach(veth.ifindex, prog("multi_buffer"), XDP_FLAGS_DRV_MODE, nullptr), 0);
  const auto id = netns_->xdp_prog_id();
  ASSERT_TRUE(id);
  for (AttachMode mode : {AttachMode::native, AttachMode::automatic}) {
    const std::string message = attach_error(prog("multi_buffer"), true, VethNamespace::kVeth, mode);
    EXPECT_CONTAINS(message, ("xdpt0 already has an XDP program (id " + std::to_string(*id) + ", 'multi_buffer', native mode)"));
    EXPECT_CONTAINS(message, ("attached through netlink"));
    EXPECT_CONTAINS(message, ("`ip link set dev xdpt0 xdpdrv off`"));
  }
  bpf_xdp_detach(veth.ifindex, XDP_FLAGS_DRV_MODE, nullptr);
}

// A program held by a bpf_link of another process: the link id and the process.
TEST_F(AttachTest, AnotherProgramHeldByALink) {
  AttachMode mode = AttachMode::native;
  std::string reason;
  auto held = attach_xdp_link(prog("multi_buffer"), true, interface(VethNamespace::kVeth), mode, reason);
  ASSERT_TRUE(held) << held.error().message;
  const std::string message = attach_error(prog("multi_buffer"), true, VethNamespace::kVeth, AttachMode::native);
  EXPECT_CONTAINS(message, ("already has an XDP program"));
  EXPECT_CONTAINS(message, ("through bpf_link id"));
  EXPECT_CONTAINS(message, ("held by pid " + std::to_string(::getpid())));
  ::close(*held);
}

// A device whose driver has no native XDP (a bridge): native fails and says so; auto falls back to generic
// mode and says why.
TEST_F(AttachTest, DriverWithoutNativeXdp) {
  ip("link add xdpbr0 type bridge");
  ip("link set dev xdpbr0 up");
  const std::string message = attach_error(prog("multi_buffer"), true, "xdpbr0", AttachMode::native);
  EXPECT_CONTAINS(message, ("attaching to xdpbr0 in native mode"));
  EXPECT_CONTAINS(message, ("the driver 'bridge' of xdpbr0 has no native XDP; use mode = \"generic\""));

  AttachMode mode = AttachMode::automatic;
  std::string reason;
  auto link = attach_xdp_link(prog("multi_buffer"), true, interface("xdpbr0"), mode, reason);
  ASSERT_TRUE(link) << link.error().message;
  EXPECT_EQ(mode, AttachMode::generic);
  EXPECT_CONTAINS(reason, ("has no native XDP"));
  ::close(*link);
}

// Missing privileges. Once a program is loaded, this kernel (6.18) creates its XDP link without any of
// CAP_BPF, CAP_NET_ADMIN or CAP_SYS_ADMIN (checked: dropping them all still attaches), so the refusal a
// user meets is at load: the dispatcher loaded with them dropped from this process's effective set.
// (attach_xdp_link maps an EPERM from the attach to the same advice, for kernels that check there.)
TEST_F(AttachTest, MissingPrivileges) {
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct data[2] = {};
  ASSERT_EQ(::syscall(SYS_capget, &header, data), 0);
  __user_cap_data_struct dropped[2] = {data[0], data[1]};
  for (int cap : {CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN})
    dropped[cap / 32].effective &= ~(1u << (cap % 32));
  auto dispatcher = LoadedObject::open(std::string(XDPP_TEST_BPF_DIR) + "/dispatcher.bpf.o", "dispatcher",
                                       interface(VethNamespace::kVeth), "xdpp_dispatcher");
  ASSERT_TRUE(dispatcher) << dispatcher.error().message;
  ASSERT_EQ(::syscall(SYS_capset, &header, dropped), 0);
  Status loaded = (*dispatcher)->load();
  ASSERT_EQ(::syscall(SYS_capset, &header, data), 0);  // back, for TearDown
  ASSERT_FALSE(loaded) << "the dispatcher loaded without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN";
  EXPECT_CONTAINS(loaded.error().message, ("stage 'dispatcher': loading "));
  EXPECT_CONTAINS(loaded.error().message, ("Operation not permitted: missing privileges: loading BPF programs needs CAP_BPF"));
}

}  // namespace
}  // namespace xdpp::host_test
