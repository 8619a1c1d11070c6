// libpng 1.6 (Debian: libpng-dev; pkg-config libpng) for the Plots module. Only the
// simplified write API (png_image_write_to_file) is used: it reports errors by return
// value and message, never by longjmp.
#include <png.h>

static inline png_uint_32 ds2_png_image_version(void) { return PNG_IMAGE_VERSION; }
static inline png_uint_32 ds2_png_format_rgb(void) { return PNG_FORMAT_RGB; }
