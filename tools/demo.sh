#!/usr/bin/env bash
# The main job on sample photos: install phototag, copy real sample photos into a folder,
# index them into the default catalog (tags written into the copies), then search.
#   bash tools/demo.sh [FOLDER]        (default: ./phototag-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e '.[samples]'
folder=${1:-phototag-demo}
python tools/sample_photos.py "$folder"
write=()
if ! command -v exiftool >/dev/null; then
  echo "exiftool is not installed (apt-get install libimage-exiftool-perl): tags go to the catalog only"
  write=(--no-write)
fi
phototag index "${write[@]}" "$folder"
echo; echo '$ phototag find --word cat --limit 3'; phototag find --word cat --limit 3
echo; echo '$ phototag find --word bed --limit 3'; phototag find --word bed --limit 3
echo; echo "\$ phototag tags $folder/coffee.png"; phototag tags "$folder/coffee.png"
echo; echo '$ phototag status'; phototag status
