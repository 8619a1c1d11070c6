// libpng 1.6 (Debian: libpng-dev; pkg-config libpng) for the Plots module. Swift calls the
// simplified read API (png_image_*), which reports errors by return value and message,
// and ds2_png_write_rgb below, which keeps libpng's longjmp error handling inside C.
#include <png.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

static inline png_uint_32 ds2_png_image_version(void) { return PNG_IMAGE_VERSION; }
static inline png_uint_32 ds2_png_format_rgb(void) { return PNG_FORMAT_RGB; }

static inline void ds2_png_error(png_structp png, png_const_charp message) {
  char *out = (char *)png_get_error_ptr(png);
  if (out) { strncpy(out, message, 255); out[255] = 0; }
  png_longjmp(png, 1);
}

static inline void ds2_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

// Writes 8-bit RGB rows (`stride` bytes apart) to `path` with one tEXt chunk
// (`key`, `text`) before the image data. Returns 1, or 0 with libpng's or the system's
// message in `message` (256 bytes).
static inline int ds2_png_write_rgb(const char *path, png_uint_32 width, png_uint_32 height, const unsigned char *pixels,
                                    size_t stride, const char *key, const char *text, char *message) {
  message[0] = 0;
  FILE *file = fopen(path, "wb");
  if (!file) { strncpy(message, strerror(errno), 255); message[255] = 0; return 0; }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, message, ds2_png_error, ds2_png_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    strcpy(message, "out of memory");
    png_destroy_write_struct(png ? &png : NULL, NULL);
    fclose(file);
    return 0;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(file);
    return 0;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_text chunk;
  memset(&chunk, 0, sizeof chunk);
  chunk.compression = PNG_TEXT_COMPRESSION_NONE;
  chunk.key = (png_charp)key;
  chunk.text = (png_charp)text;
  png_set_text(png, info, &chunk, 1);
  png_write_info(png, info);
  for (png_uint_32 row = 0; row < height; row++) png_write_row(png, pixels + (size_t)row * stride);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  if (fflush(file) != 0 || ferror(file)) {
    strncpy(message, strerror(errno), 255);
    message[255] = 0;
    fclose(file);
    return 0;
  }
  if (fclose(file) != 0) { strncpy(message, strerror(errno), 255); message[255] = 0; return 0; }
  return 1;
}
