#!/usr/bin/env bash
# Mesa's software Vulkan driver (lavapipe) unpacked into a folder, so that Dawn (the `webgpu` package) finds
# an adapter on a machine without a GPU and the webgpu backend's tests run there (slowly, on the CPU).
# Debian bookworm's Mesa 22.3 lacks the shader{Sampled,Storage}ImageArrayDynamicIndexing features Dawn
# requires; bookworm-backports' Mesa 25 has them. Nothing is installed system-wide: the packages and the
# libraries they need that this machine lacks are unpacked with dpkg -x, and DIR/env.sh points the Vulkan
# loader at them.
#   bash infra/lavapipe.sh [DIR]; source DIR/env.sh; node --test dist/test/adam.test.js
set -euo pipefail
dir=$(realpath -m "${1:-${XDG_CACHE_HOME:-$HOME/.cache}/infodisent-lavapipe}")
mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/root"
# The backports suite of the Debian mirror this machine already uses.
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
  grep -oE '(^deb|^URIs:) +[a-z]+://[^ ]+/debian/?( |$)' | awk '{ print $2; exit }')
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }
echo "deb $mirror $codename-backports main" >"$dir/apt/sources.list"
# Backports' package lists only, kept in DIR: the machine's apt configuration is left alone.
apt_options=(
  -o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
)
apt-get "${apt_options[@]}" update -qq
mesa=$(apt-cache "${apt_options[@]}" madison mesa-vulkan-drivers | awk -v suite="$codename-backports" '$0 ~ suite { print $3; exit }')
[ -n "$mesa" ] || { echo "no mesa-vulkan-drivers in $codename-backports" >&2; exit 1; }
cd "$dir/debs"
apt-get "${apt_options[@]}" download "mesa-vulkan-drivers=$mesa" 2>/dev/null
# The driver's shared-library dependencies (and theirs) from the machine's own suites, where they are
# not installed (its python3 dependency only serves scripts the driver does not need).
missing=()
for package in libvulkan1 $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances mesa-vulkan-drivers | grep '^lib' | sort -u); do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] || apt-get download "${missing[@]}" 2>/dev/null
for deb in ./*.deb; do dpkg -x "$deb" "$dir/root"; done
lib="$dir/root/usr/lib/x86_64-linux-gnu"
sed "s#\"library_path\": \"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
  "$dir/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$dir/lvp_icd.json"
cat >"$dir/env.sh" <<EOF
export LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export VK_DRIVER_FILES=$dir/lvp_icd.json
export VK_ICD_FILENAMES=$dir/lvp_icd.json
EOF
echo "lavapipe (Mesa $mesa) in $dir; use it with: source $dir/env.sh"
