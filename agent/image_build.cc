#include "agent/image_build.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/lifecycle.h"
#include "common/proc/spawn.h"

extern char** environ;

namespace assay {

// $1 kind (buildah|podman|docker), $2 tool, $3 context, $4 file, $5 network ("" or none),
// $6 auth file ("": no push), $7 digest dir, $8 reason file (where a failure says why, for the
// job's message), then the references (primary first).
const char* const kBuildScript = R"SH(kind=$1 tool=$2 context=$3 file=$4 network=$5 auth=$6
digests=$7 reason=$8
shift 8
first=$1
# run CMD...: CMD's stderr to the log as it comes and to $reason.err too; its status in $s.
run() {
  { { "$@" 2>&1 1>&3 && echo 0 >"$reason.rc" || echo $? >"$reason.rc"; } |
    tee "$reason.err" >&2; } 3>&1
  s=$(cat "$reason.rc")
}
# The last line the tool wrote to stderr (FILE), without "Error: "; of a longer line, its last
# 240 characters (where the registry's or builder's own words are).
said() {
  sed -n '/./h; ${x;s/^Error: //;p;}' "$1" |
    awk '{ if (length($0) > 240) print "..." substr($0, length($0) - 239); else print }'
}
echo "assay: building $first"
if [ "$kind" = buildah ]; then
  run "$tool" bud --layers ${network:+--network=$network} -f "$file" -t "$first" "$context"
else
  run "$tool" build ${network:+--network=$network} -f "$file" -t "$first" "$context"
fi
if [ "$s" -ne 0 ]; then
  echo "build_image: build of $first failed (exit status $s): $(said "$reason.err")" >"$reason"
  exit $s
fi
for ref in "$@"; do
  if [ "$ref" != "$first" ]; then "$tool" tag "$first" "$ref"; fi
  echo "assay: tagged $ref"
done
[ -n "$auth" ] || exit 0
i=0
for ref in "$@"; do
  registry=${ref%%/*}
  if [ "$kind" = docker ]; then
    if "$tool" --config "${auth%/*}" push "$ref" >"$digests/$i.out" 2>&1; then
      cat "$digests/$i.out"
      sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p' "$digests/$i.out" >"$digests/$i"
    else
      s=$?
      cat "$digests/$i.out"
      echo "assay: push of $ref to registry $registry failed (exit status $s)"
      echo "build_image: push of $ref to registry $registry failed (exit status $s):" \
        "$(said "$digests/$i.out")" >"$reason"
      exit $s
    fi
  else
    run "$tool" push --authfile "$auth" --digestfile "$digests/$i" "$ref" "docker://$ref"
    if [ "$s" -ne 0 ]; then
      rm -f "$digests/$i"
      echo "assay: push of $ref to registry $registry failed (exit status $s)"
      echo "build_image: push of $ref to registry $registry failed (exit status $s):" \
        "$(said "$reason.err")" >"$reason"
      exit $s
    fi
  fi
  echo "assay: pushed $ref@$(cat "$digests/$i")"
  i=$((i+1))
done
)SH";

namespace {

std::vector<std::string> ToolEnvp() {
  std::vector<std::string> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    for (std::string_view keep :
         {"PATH=", "HOME=", "LANG=", "TZ=", "TMPDIR=", "XDG_RUNTIME_DIR=", "CONTAINERS_CONF=",
          "CONTAINERS_REGISTRIES_CONF=", "CONTAINERS_STORAGE_CONF="}) {
      if (entry.substr(0, keep.size()) == keep) envp.emplace_back(entry);
    }
  }
  if (std::none_of(envp.begin(), envp.end(),
                   [](const std::string& e) { return e.rfind("PATH=", 0) == 0; })) {
    envp.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  return envp;
}

// The repository of a reference: without its ":tag" (the ':' after the last '/').
std::string RepositoryOf(const std::string& ref) {
  const size_t slash = ref.rfind('/');
  const size_t colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return ref.substr(0, colon);
  }
  return ref;
}

// realpath(3) of `path`, or "" when it does not exist.
std::string RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) return "";
  return resolved;
}

bool Inside(const std::string& root, const std::string& path) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

bool IsDigest(const std::string& d) {
  return d.size() == 71 && d.rfind("sha256:", 0) == 0 &&
         std::all_of(d.begin() + 7, d.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

absl::Status WritePrivateFile(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status MakePrivateDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
    return absl::InternalError(absl::StrCat(path, " is not a directory of the agent's"));
  }
  return absl::OkStatus();
}

}  // namespace

ImageBuildTool FindImageBuildTool(const std::optional<ContainerRuntime>& runtime,
                                  const std::string& path_env) {
  if (absl::StatusOr<std::string> buildah = FindExecutable("buildah", path_env); buildah.ok()) {
    return {ImageBuildTool::Kind::kBuildah, *buildah};
  }
  if (runtime.has_value()) {
    return {runtime->docker ? ImageBuildTool::Kind::kDocker : ImageBuildTool::Kind::kPodman,
            runtime->path};
  }
  return {};
}

std::vector<std::string> BuildReferences(const v1::BuildImageStep& step,
                                         const std::string& commit_sha) {
  std::vector<std::string> refs;
  auto add = [&](std::string ref) {
    if (std::find(refs.begin(), refs.end(), ref) == refs.end()) refs.push_back(std::move(ref));
  };
  for (const std::string& tag : step.tags()) add(absl::StrCat(RepositoryOf(tag), ":", commit_sha));
  for (const std::string& tag : step.tags()) {
    if (RepositoryOf(tag) != tag) add(tag);
  }
  return refs;
}

std::string RegistryHost(const std::string& reference) {
  const size_t slash = reference.find('/');
  if (slash == std::string::npos) return "docker.io";
  const std::string first = reference.substr(0, slash);
  if (first.find_first_of(".:") != std::string::npos || first == "localhost") return first;
  return "docker.io";
}

absl::StatusOr<std::string> AuthFileText(const std::vector<std::string>& registries,
                                         const std::string& user_password) {
  const size_t colon = user_password.find(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError("its value must be user:password");
  }
  std::string text = "{\"auths\":{";
  for (size_t i = 0; i < registries.size(); ++i) {
    // Registry hosts are [A-Za-z0-9.:-] (checked by the linter): nothing to escape.
    absl::StrAppend(&text, i > 0 ? "," : "", "\"", registries[i], "\":{\"auth\":\"",
                    absl::Base64Escape(user_password), "\"}");
  }
  text += "}}";
  return text;
}

ImageBuilds::ImageBuilds(const v1::Assignment& a, std::string workspace, std::string private_dir,
                         ImageBuildTool tool)
    : a_(a),
      workspace_(std::move(workspace)),
      private_dir_(std::move(private_dir)),
      tool_(std::move(tool)) {}

ImageBuilds::~ImageBuilds() {
  if (access(private_dir_.c_str(), F_OK) == 0) (void)RemoveTree(private_dir_);
}

StepProcess ImageBuilds::Refuse(size_t step_index, const std::string& problem) {
  reasons_[step_index] = absl::StrCat("build_image: ", problem);
  StepProcess p;
  p.path = "/bin/sh";
  p.argv = {"/bin/sh", "-c", "printf '%s\\n' \"$1\"; exit 1", "assay-build-image",
            absl::StrCat("assay: build_image: ", problem)};
  p.env = ToolEnvp();
  p.cwd = workspace_;
  p.as_job_user = false;
  return p;
}

absl::StatusOr<StepProcess> ImageBuilds::Command(size_t step_index) {
  const v1::Step& step = a_.steps(static_cast<int>(step_index));
  const v1::BuildImageStep& b = step.build_image();
  if (b.tags().empty()) return Refuse(step_index, "tags is empty");
  if (b.push() && a_.untrusted()) {
    return Refuse(step_index,
                  "push: true is refused: this pipeline is untrusted (a fork's pull request), and "
                  "untrusted pipelines never get registry credentials");
  }
  if (tool_.kind == ImageBuildTool::Kind::kNone) {
    return Refuse(step_index,
                  "this agent has neither buildah nor a container runtime (podman or docker)");
  }
  // The context and the file, resolved now (an earlier step may have written them), must stay
  // inside the workspace: a symlink must not lead the build to the agent's own files.
  const std::string root = RealPath(workspace_);
  const std::string context = RealPath(absl::StrCat(workspace_, "/", b.context()));
  if (context.empty()) {
    return Refuse(step_index,
                  absl::StrCat("context '", b.context(), "' does not exist in the workspace"));
  }
  if (root.empty() || !Inside(root, context)) {
    return Refuse(step_index,
                  absl::StrCat("context '", b.context(), "' leads out of the workspace"));
  }
  const std::string file_rel =
      b.file().empty() ? absl::StrCat(b.context(), "/Containerfile") : b.file();
  const std::string file = RealPath(absl::StrCat(workspace_, "/", file_rel));
  if (file.empty()) {
    return Refuse(step_index,
                  absl::StrCat("file '", file_rel, "' does not exist in the workspace"));
  }
  if (!Inside(root, file)) {
    return Refuse(step_index, absl::StrCat("file '", file_rel, "' leads out of the workspace"));
  }
  const std::vector<std::string> refs = BuildReferences(b, a_.commit_sha());
  std::string auth_file;
  std::string digest_dir;
  const std::string dir = absl::StrCat(private_dir_, "/step-", step_index);
  if (absl::Status s = MakePrivateDir(private_dir_); !s.ok()) return s;
  if (absl::Status s = MakePrivateDir(dir); !s.ok()) return s;
  const std::string reason_file = dir + "/reason";
  reason_files_[step_index] = reason_file;
  if (b.push()) {
    const v1::JobSecret* secret = nullptr;
    for (const v1::JobSecret& s : a_.secrets()) {
      if (s.name() == b.registry_secret()) secret = &s;
    }
    if (secret == nullptr || !secret->withheld().empty() || secret->value().empty()) {
      return Refuse(step_index, absl::StrCat("registry_secret '", b.registry_secret(),
                                             "' was not given to this job",
                                             secret != nullptr && !secret->withheld().empty()
                                                 ? absl::StrCat(": ", secret->withheld())
                                                 : ""));
    }
    std::vector<std::string> registries;
    for (const std::string& ref : refs) {
      const std::string host = RegistryHost(ref);
      if (std::find(registries.begin(), registries.end(), host) == registries.end()) {
        registries.push_back(host);
      }
    }
    absl::StatusOr<std::string> text = AuthFileText(registries, secret->value());
    if (!text.ok()) {
      return Refuse(step_index, absl::StrCat("registry_secret '", b.registry_secret(),
                                             "': ", text.status().message()));
    }
    digest_dir = dir + "/digests";
    if (absl::Status s = MakePrivateDir(digest_dir); !s.ok()) return s;
    if (absl::Status s = MakePrivateDir(dir + "/auth"); !s.ok()) return s;
    auth_file = dir + "/auth/config.json";
    if (absl::Status s = WritePrivateFile(auth_file, *text); !s.ok()) return s;
    started_.push_back({step_index, refs, digest_dir});
  }
  const char* kind = tool_.kind == ImageBuildTool::Kind::kBuildah  ? "buildah"
                     : tool_.kind == ImageBuildTool::Kind::kDocker ? "docker"
                                                                   : "podman";
  StepProcess p;
  p.path = "/bin/sh";
  p.argv = {"/bin/sh", "-e",       "-c",       kBuildScript, "assay-build-image",
            kind,      tool_.path, context,    file,         a_.network(),
            auth_file, digest_dir, reason_file};
  p.argv.insert(p.argv.end(), refs.begin(), refs.end());
  p.env = ToolEnvp();
  p.cwd = workspace_;
  p.as_job_user = false;
  return p;
}

std::string ImageBuilds::FailureReason(size_t step_index) const {
  if (auto it = reasons_.find(step_index); it != reasons_.end()) return it->second;
  auto it = reason_files_.find(step_index);
  if (it == reason_files_.end()) return "";
  std::ifstream in(it->second);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  // Written by the build script from the tool's own words: bounded, one line, printable.
  if (line.size() > 1000) line.resize(1000);
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return line;
}

std::vector<v1::BuiltImage> ImageBuilds::Pushed() const {
  std::vector<v1::BuiltImage> out;
  for (const Started& s : started_) {
    for (size_t i = 0; i < s.references.size(); ++i) {
      std::ifstream in(absl::StrCat(s.digest_dir, "/", i));
      std::string digest;
      if (!in || !std::getline(in, digest)) break;  // this push (and those after) did not happen
      while (!digest.empty() && (digest.back() == '\n' || digest.back() == '\r')) {
        digest.pop_back();
      }
      if (!IsDigest(digest)) break;
      v1::BuiltImage image;
      image.set_reference(s.references[i]);
      image.set_digest(digest);
      image.set_primary(i == 0);
      out.push_back(std::move(image));
    }
  }
  return out;
}

}  // namespace assay
