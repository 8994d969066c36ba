#!/usr/bin/env bash
# Builds Latchkey's release artifacts (docs/install.md#release-builds).
#
#   ./build.sh release [RID ...]
#
# Into artifacts/release/: for each runtime identifier (default: linux-x64 linux-arm64 osx-x64 osx-arm64 win-x64)
# an archive latchkey-VERSION-RID.tar.gz (.zip for Windows) holding one self-contained `latchkey` executable that
# runs without .NET installed, the RID-specific .NET tool packages (latchkey.VERSION.nupkg, the pointer package
# `dotnet tool install` reads, plus latchkey.RID.VERSION.nupkg for each RID and latchkey.any.VERSION.nupkg,
# framework-dependent, for every other platform), and SHA256SUMS over all of them.
#
# Each RID is compiled with Native AOT when this machine can link it (the same OS and a C toolchain for its
# architecture, plus a static SQLite for it so the executable is one file), else as a single-file ReadyToRun
# executable (the runtime inside it; starts slower). The summary at the end says which RID got which, and why.
# Installs what the native build needs (clang, zlib1g-dev, libsqlite3-dev; the aarch64 cross toolchain) when run
# as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

[ "${1:-}" = release ] || die "usage: ./build.sh release [RID ...]   (RIDs: linux-x64 linux-arm64 osx-x64 osx-arm64 win-x64)"
shift
rids=("$@")
all=false
((${#rids[@]})) || { rids=(linux-x64 linux-arm64 osx-x64 osx-arm64 win-x64); all=true; }

command -v dotnet >/dev/null 2>&1 || die "the .NET 10 SDK is needed: install it from https://dot.net and run again"

# What the native (Native AOT) build links with, installed when missing (as root, with apt), as ./test.sh does.
apt_needs=(clang:clang /usr/include/zlib.h:zlib1g-dev "/usr/lib/$(uname -m)-linux-gnu/libsqlite3.a:libsqlite3-dev")
case " ${rids[*]} " in *" linux-arm64 "*) [ "$(uname -m)" = x86_64 ] && apt_needs+=(aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu aarch64-linux-gnu-objcopy:binutils-aarch64-linux-gnu) ;; esac
have() { case "$1" in /*) compgen -G "$1" >/dev/null ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }
missing=()
for entry in "${apt_needs[@]}"; do have "${entry%%:*}" || missing+=("${entry##*:}"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "not installed: ${missing[*]} (e.g. sudo apt-get install -y ${missing[*]}); the RIDs that need them are built single-file ReadyToRun instead"
  fi
fi

project=src/Latchkey/Latchkey.csproj
version=$(dotnet msbuild "$project" -getProperty:Version -p:LatchkeyRelease=true 2>/dev/null | tr -d '\r')
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Built from a tree with changes not committed (untracked source files too: the SDK compiles every .cs under src/):
# never pass it off as the commit.
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=all -- src Directory.Build.props Directory.Packages.props global.json README.md 2>/dev/null)" ]; then
  commit="$commit-dirty"
fi
out=artifacts/release
work=artifacts/release-build  # intermediate output, kept for incremental rebuilds
# A full build starts from an empty folder; naming RIDs replaces only theirs (SHA256SUMS covers what is there).
if $all; then rm -rf "$out"; fi
mkdir -p "$out" "$work"
# Native symbol files left by an earlier build with symbols would ride along into the tool packages.
find "$work" -name '*.dbg' -delete
# Every build: Release, this version and commit in `latchkey --version` (no .git needed in the tree).
common=(-c Release -p:LatchkeyRelease=true -p:SourceRevisionId="$commit" -p:IncludeSourceRevisionInInformationalVersion=true
  --artifacts-path "$root/$work/artifacts" --nologo --verbosity quiet -clp:ErrorsOnly)

host_os=$(uname -s)
host_arch=$(uname -m)
# How to build RID: prints "aot ARGS..." or "r2r REASON".
plan() {
  local rid=$1 triple multiarch
  case $rid in
    linux-x64) triple=x86_64-linux-gnu ;;
    linux-arm64) triple=aarch64-linux-gnu ;;
    osx-*) echo "r2r Native AOT for macOS links with Apple's linker and SDK, which run only on macOS"; return ;;
    win-*) echo "r2r Native AOT for Windows links with the MSVC linker and Windows SDK, which run only on Windows"; return ;;
    *) echo "r2r no Native AOT recipe for $rid here"; return ;;
  esac
  [ "$host_os" = Linux ] || { echo "r2r cross-OS Native AOT is not supported (host: $host_os)"; return; }
  command -v clang >/dev/null 2>&1 || { echo "r2r clang is not installed (apt-get install clang)"; return; }
  multiarch=/usr/lib/$triple/libsqlite3.a
  if [ "$triple" = "$host_arch-linux-gnu" ]; then
    [ -e "$multiarch" ] || { echo "r2r no static SQLite ($multiarch: apt-get install libsqlite3-dev)"; return; }
    echo "aot -p:LatchkeySqliteStatic=$multiarch"
    return
  fi
  # Cross-architecture: clang --target=$triple with Debian's cross toolchain (its libc and libgcc) and binutils.
  command -v "$triple-gcc" >/dev/null 2>&1 || { echo "r2r no $triple cross toolchain (apt-get install gcc-$triple binutils-$triple)"; return; }
  [ -e "$multiarch" ] || multiarch=$(cross_sqlite "${rid#linux-}" "$triple") ||
    { echo "r2r no static SQLite for ${rid#linux-} (fetching Debian's libsqlite3-dev:${rid#linux-} failed; or: dpkg --add-architecture ${rid#linux-}; apt-get install libsqlite3-dev:${rid#linux-})"; return; }
  echo "aot -p:LatchkeySqliteStatic=$multiarch -p:ObjCopyName=$triple-objcopy"
}

# Debian's static SQLite for another architecture, fetched into the build folder with apt's own download (a private
# package list for that architecture only: this machine's dpkg architectures and installed packages stay as they
# are) and unpacked there. Prints the path of libsqlite3.a.
cross_sqlite() { # ARCH TRIPLE
  local arch=$1 triple=$2 dir="$root/$work/cross-$1" deb
  if [ ! -e "$dir/root/usr/lib/$triple/libsqlite3.a" ]; then
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || return 1
    rm -rf "$dir" && mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/deb" "$dir/root"
    local apt=(apt-get -qq -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "Dir::State::Lists=$dir/lists"
      -o "Dir::Cache=$dir/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    log "fetching Debian's libsqlite3-dev:$arch into $work/cross-$arch (the static SQLite linked into the $arch executable)"
    "${apt[@]}" update >/dev/null 2>&1 || return 1
    (cd "$dir/deb" && "${apt[@]}" download "libsqlite3-dev:$arch" >/dev/null 2>&1) || return 1
    deb=$(ls "$dir"/deb/libsqlite3-dev_*_"$arch".deb 2>/dev/null | head -1)
    [ -n "$deb" ] && dpkg-deb -x "$deb" "$dir/root" || return 1
  fi
  echo "$dir/root/usr/lib/$triple/libsqlite3.a"
}

summary=()
for rid in "${rids[@]}"; do
  read -r mode rest < <(plan "$rid")
  publish="$root/$work/publish/$rid"
  rm -rf "$publish"
  if [ "$mode" = aot ]; then
    log "$rid: Native AOT"
    # shellcheck disable=SC2206 # rest holds -p:NAME=VALUE words without spaces
    args=(-r "$rid" -p:PublishAot=true $rest)
    pack_args=("${args[@]}")
    how="Native AOT"
  else
    log "$rid: single-file ReadyToRun ($rest)"
    # Trimmed (the code is trim-clean: the same analyzers as for Native AOT), else the runtime and ASP.NET Core whole.
    args=(-r "$rid" -p:SelfContained=true -p:PublishAot=false -p:PublishSingleFile=true -p:PublishReadyToRun=true -p:PublishTrimmed=true)
    # A tool package holds the published folder (self-contained, ReadyToRun): `dotnet tool` installs no single file.
    pack_args=(-r "$rid" -p:SelfContained=true -p:PublishAot=false -p:PublishReadyToRun=true -p:PublishTrimmed=true)
    how="single-file ReadyToRun: $rest"
  fi
  dotnet publish "$project" "${common[@]}" "${args[@]}" -o "$publish" >&2 || die "$rid: the build failed (above)"
  # The tool package for this RID, from the same build (MSBuild skips what is up to date).
  dotnet pack "$project" "${common[@]}" "${pack_args[@]}" -o "$root/$out" >&2 || die "$rid: packing the tool failed (above)"

  exe=latchkey
  case $rid in win-*) exe=latchkey.exe ;; esac
  name="latchkey-$version-$rid"
  stage="$root/$work/stage/$name"
  rm -rf "$stage"
  mkdir -p "$stage"
  cp "$publish/$exe" "$stage/"
  cp README.md "$stage/"
  case $rid in
    win-*) (cd "$stage/.." && rm -f "$root/$out/$name.zip" && zip -qr "$root/$out/$name.zip" "$name") ;;
    *) tar -C "$stage/.." --owner=0 --group=0 -czf "$out/$name.tar.gz" "$name" ;;
  esac
  summary+=("$rid: $how")
done

# The pointer package `dotnet tool install` reads (it lists ToolPackageRuntimeIdentifiers): with PublishAot=true a
# RID-less pack makes only it, never a RID package of its own over the ones above. Then `any`: framework-dependent,
# for every platform without a package of its own (needs .NET 10 there).
log "tool packages: the pointer package and 'any' (framework-dependent, for other platforms)"
dotnet pack "$project" "${common[@]}" -p:PublishAot=true -o "$root/$out" >&2 || die "packing the pointer package failed (above)"
dotnet pack "$project" "${common[@]}" -r any -p:PublishAot=false -o "$root/$out" >&2 || die "packing the 'any' package failed (above)"

(cd "$out" && shopt -s nullglob && files=(*.tar.gz *.zip *.nupkg) && sha256sum -- "${files[@]}" >SHA256SUMS)
echo "latchkey $version (commit $commit) in $out/:"
for line in "${summary[@]}"; do echo "  $line"; done
(cd "$out" && ls -l -- * | awk '{printf "  %10d  %s\n", $5, $9}')
