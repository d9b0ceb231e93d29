package image

import (
	stdimage "image"
	"io"
)

// WithDecoder returns o decoding with dec instead of the real decoders, so
// tests can make a decoder panic or block.
func WithDecoder(o Options, dec func(r io.Reader, typ string) (stdimage.Image, error)) Options {
	o.decode = dec
	return o
}
