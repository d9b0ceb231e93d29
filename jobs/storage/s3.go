package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Options configures the S3-compatible backend.
type S3Options struct {
	Bucket string
	// Endpoint is the service's base URL (MinIO, R2, …); empty means AWS.
	Endpoint string
	Region   string
	// PathStyle addresses the bucket as endpoint/bucket/key instead of
	// bucket.endpoint/key, which most S3-compatible services need.
	PathStyle bool
	// AccessKey and SecretKey are static credentials; when both are empty
	// the SDK's default chain (environment, shared files, instance role)
	// is used.
	AccessKey string
	SecretKey string
	// Prefix is put before every key ("moim/"), so one bucket can serve
	// several deployments.
	Prefix string
	// PublicBaseURL, when set, is where clients read objects without a
	// signature (a CDN or a public bucket); URL returns it plus the
	// prefixed key.
	PublicBaseURL string
	// HTTPClient sends the requests; the SDK's default when nil.
	HTTPClient *http.Client
}

// S3 keeps objects in a bucket of an S3-compatible service.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	opts    S3Options
}

var _ Store = (*S3)(nil)

// NewS3 builds the client. It makes no request: a wrong bucket or
// credentials show on the first call.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3 storage: bucket is required")
	}
	if opts.Region == "" {
		return nil, errors.New("s3 storage: region is required")
	}
	if (opts.AccessKey == "") != (opts.SecretKey == "") {
		return nil, errors.New("s3 storage: access key and secret key go together")
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	cfg, err := awsConfig(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// The SDK's default checksums (CRC trailers) are not understood
		// by every S3-compatible service; S3 itself does not need them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{client: client, presign: s3.NewPresignClient(client), opts: opts}, nil
}

// awsConfig uses the static credentials when they are given, and nothing
// from the environment then, so no stray AWS_* variable or ~/.aws file
// changes where objects go; without them the SDK's default chain finds
// the credentials.
func awsConfig(ctx context.Context, opts S3Options) (aws.Config, error) {
	if opts.AccessKey != "" {
		cfg := aws.Config{
			Region:      opts.Region,
			Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, "")),
		}
		if opts.HTTPClient != nil {
			cfg.HTTPClient = opts.HTTPClient
		}
		return cfg, nil
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(opts.Region)}
	if opts.HTTPClient != nil {
		loadOpts = append(loadOpts, awsconfig.WithHTTPClient(opts.HTTPClient))
	}
	return awsconfig.LoadDefaultConfig(ctx, loadOpts...)
}

// checkPrefix allows what NewKey allows for its parts, plus '/' between
// them and '.' inside them: never an empty, "." or ".." segment.
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(p, "/"), "/") {
		ok := seg != "" && seg != "." && seg != ".."
		for _, c := range []byte(seg) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				ok = false
			}
		}
		if !ok {
			return fmt.Errorf("s3 storage: prefix %q: segments of letters, digits, '-', '_' or '.' separated by '/'", p)
		}
	}
	return nil
}

// name is the object's key in the bucket.
func (s *S3) name(key Key) string {
	p := s.opts.Prefix
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p + key.String()
}

// Put uploads the object in one request. The body is sent unsigned (its
// digest would need a second pass over a reader that may not rewind); TLS
// and the Content-Length check protect it instead.
func (s *S3) Put(ctx context.Context, key Key, r io.Reader, size int64, contentType string) error {
	contentType, err := checkPut(key, size, contentType)
	if err != nil {
		return err
	}
	body := newExactReader(ctx, r, size)
	if size == 0 {
		// The HTTP client need not read an empty body at all, so its
		// look-ahead would never run: check it before sending.
		if err := body.checkEnd(); err != nil {
			return fmt.Errorf("s3 storage: put %s: %w", key, err)
		}
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.opts.Bucket),
		Key:           aws.String(s.name(key)),
		Body:          body,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String(contentType),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if m := body.mismatch(); m != nil {
		// The SDK reports what the failed body did to the request.
		return fmt.Errorf("s3 storage: put %s: %w", key, m)
	}
	if err != nil {
		return fmt.Errorf("s3 storage: put %s: %w", key, err)
	}
	return nil
}

// Open downloads the object.
func (s *S3) Open(ctx context.Context, key Key) (io.ReadCloser, Info, error) {
	if err := checkKey(key); err != nil {
		return nil, Info{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.name(key))})
	if err != nil {
		return nil, Info{}, s.fail("open", key, err)
	}
	return out.Body, Info{
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ETag:        aws.ToString(out.ETag),
	}, nil
}

// ReadPrefix asks for the first n bytes only (a Range request).
func (s *S3) ReadPrefix(ctx context.Context, key Key, n int) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errors.New("read prefix: n must not be negative")
	}
	if n == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.opts.Bucket),
		Key:    aws.String(s.name(key)),
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", n-1)),
	})
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
		// Only an empty object has no byte 0.
		return []byte{}, nil
	}
	if err != nil {
		return nil, s.fail("read prefix of", key, err)
	}
	defer out.Body.Close()
	// A service that ignores Range sends everything: read n bytes only.
	return readPrefix(out.Body, n, key)
}

// Stat sends a HEAD request.
func (s *S3) Stat(ctx context.Context, key Key) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.name(key))})
	if err != nil {
		return Info{}, s.fail("stat", key, err)
	}
	return Info{
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ETag:        aws.ToString(out.ETag),
	}, nil
}

// Delete removes the object; S3 answers a missing key like a deleted one.
func (s *S3) Delete(ctx context.Context, key Key) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.name(key))})
	if err != nil {
		if err = s.fail("delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// PresignPut signs a PutObject request whose signature covers the content
// type and length, so the service refuses any other body.
func (s *S3) PresignPut(ctx context.Context, key Key, contentType string, size int64, expiry time.Duration) (Presigned, error) {
	if err := checkPresign(key, contentType, size, expiry); err != nil {
		return Presigned{}, err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.opts.Bucket),
		Key:           aws.String(s.name(key)),
		ContentType:   aws.String(contentType),
		ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(expiry))
	if err != nil {
		return Presigned{}, fmt.Errorf("s3 storage: presign put %s: %w", key, err)
	}
	header := req.SignedHeader.Clone()
	// The HTTP client sets these itself from the URL and the body.
	header.Del("Host")
	header.Del("Content-Length")
	return Presigned{Method: req.Method, URL: req.URL, Header: header, Expires: presignExpires(req.URL, expiry)}, nil
}

// URL returns the public URL, or a pre-signed GET.
func (s *S3) URL(ctx context.Context, key Key, expiry time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if s.opts.PublicBaseURL != "" {
		return publicURL(s.opts.PublicBaseURL, s.name(key)), nil
	}
	if err := checkExpiry(expiry); err != nil {
		return "", err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.name(key))},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("s3 storage: presign get %s: %w", key, err)
	}
	return req.URL, nil
}

// fail turns a 404 into ErrNotFound and wraps anything else. A missing
// bucket is a configuration error, not a missing object, where the answer
// says so (a HEAD answer has no body to tell).
func (s *S3) fail(op string, key Key, err error) error {
	var re *smithyhttp.ResponseError
	var apiErr smithy.APIError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound &&
		!(errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket") {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("s3 storage: %s %s: %w", op, key, err)
}

// presignExpires reads the signing time back from the URL (X-Amz-Date),
// the clock the service will judge the expiry by.
func presignExpires(u string, expiry time.Duration) time.Time {
	_, q, _ := strings.Cut(u, "?")
	for kv := range strings.SplitSeq(q, "&") {
		if v, ok := strings.CutPrefix(kv, "X-Amz-Date="); ok {
			if t, err := time.Parse("20060102T150405Z", v); err == nil {
				return t.Add(expiry)
			}
		}
	}
	return time.Time{}
}
