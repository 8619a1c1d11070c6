#!/usr/bin/env bash
# Installs the Debian packages ds2-data needs, only when one is missing.
# Usage: scripts/bootstrap.sh        (sourced by scripts/demo and scripts/test)
set -euo pipefail

packages=(
  pkg-config
  libsndfile1-dev libsamplerate0-dev libfftw3-dev liblmdb-dev                  # linked C libraries
  libopenblas-dev                                                               # opened when a command first multiplies
  libopenmpi-dev openmpi-bin                                                    # linked (data-parallel training) and mpirun
  libpng-dev                                                                    # linked: ds2-data plot
  unifont                                                                       # ds2-data plot: text in any script (read at run time)
  espeak-ng sox flac                                                            # corpus and fixture generation
  tar gzip                                                                      # AISHELL-1 speaker archives (gzip: read by a dry run)
  python3 python3-venv                                                          # scripts/fuzz-hostile; scripts/python-tests' virtual environment
  slurm-wlm                                                                     # Tests/slurm: partitions under a real scheduler
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "bootstrap: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || {
  echo "bootstrap: Swift 6 is not on PATH; install it from https://www.swift.org/install/linux/ (Debian 12)" >&2
  exit 1
}
