#!/usr/bin/env bash
# Installs what MuJoCo needs to render clips off-screen without a display or a GPU: Mesa's EGL
# and its software OpenGL driver (llvmpipe), from Debian. The studio sets MUJOCO_GL=egl.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q "libEGL_mesa.so.0" && ldconfig -p | grep -q "libOpenGL.so.0"; then
  exit 0
fi
echo "Installing Mesa's EGL (libegl-mesa0, libgl1-mesa-dri, libopengl0) for MuJoCo's off-screen clips..." >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: Mesa's EGL is missing and this user cannot install it; run as root:" \
    "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0" >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 >/dev/null
