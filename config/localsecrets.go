package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// localSecretsName is the file, beside the local SQLite database, that
// keeps the secrets local mode generated.
const localSecretsName = "local-secrets.json"

// localSecrets is the file's content. Keys are config keys.
type localSecrets struct {
	JWTKey        string `json:"auth.jwt_key,omitempty"`
	AdminPassword string `json:"admin.password,omitempty"`
}

// LocalSecretsFile is where local mode keeps the secrets it generates: in
// the directory of its SQLite file (data/ by default), so that a restart
// keeps every session and the admin password, and deleting the data
// directory starts afresh. "" when the database is not a SQLite file: the
// secrets are then made anew at each start.
func (c *Config) LocalSecretsFile() string {
	if c.IsProduction() {
		return ""
	}
	path, ok := strings.CutPrefix(c.DatabaseURL(), "sqlite:")
	path, _, _ = strings.Cut(path, "?")
	path = strings.TrimPrefix(path, "file:")
	if !ok || path == "" || strings.Contains(path, ":memory:") || strings.Contains(c.DatabaseURL(), "mode=memory") {
		return ""
	}
	return filepath.Join(filepath.Dir(path), localSecretsName)
}

// FillLocalSecrets fills the secrets that are empty in local mode and
// returns their keys, so the caller can say which ones it made up. With a
// file (see LocalSecretsFile) it takes them from there, and writes the ones
// it generates there (mode 0600) for the next start; with "" they are
// throw-away. In production it does nothing: Validate reports the missing
// ones instead.
func (c *Config) FillLocalSecrets(file string) ([]string, error) {
	if c.IsProduction() || (c.Auth.JWTKey != "" && c.Admin.Password != "") {
		return nil, nil
	}
	var kept localSecrets
	if file != "" {
		b, err := os.ReadFile(file)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", file, err)
		default:
			if err := json.Unmarshal(b, &kept); err != nil {
				return nil, fmt.Errorf("read %s: %w (delete it to generate new secrets)", file, err)
			}
		}
	}
	before := kept
	var filled []string
	if c.Auth.JWTKey == "" {
		if kept.JWTKey == "" || len(kept.JWTKey) < minJWTKeyLen {
			key, err := randomString(32, base64.StdEncoding)
			if err != nil {
				return nil, fmt.Errorf("generate auth.jwt_key: %w", err)
			}
			kept.JWTKey = key
		}
		c.Auth.JWTKey = kept.JWTKey
		filled = append(filled, "auth.jwt_key")
	}
	if c.Admin.Password == "" {
		if kept.AdminPassword == "" {
			// URL-safe and unpadded so it can be typed into a Basic auth prompt.
			pw, err := randomString(16, base64.RawURLEncoding)
			if err != nil {
				return nil, fmt.Errorf("generate admin.password: %w", err)
			}
			kept.AdminPassword = pw
		}
		c.Admin.Password = kept.AdminPassword
		filled = append(filled, "admin.password")
	}
	if file != "" && kept != before {
		if err := writeSecrets(file, kept); err != nil {
			return nil, err
		}
	}
	return filled, nil
}

// writeSecrets replaces file with s through a rename, so a reader never
// sees half a file.
func writeSecrets(file string, s localSecrets) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), localSecretsName+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	// CreateTemp makes the file 0600 already: it holds keys.
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
