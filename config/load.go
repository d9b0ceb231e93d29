package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

const (
	configFlag = "config"
	configEnv  = "MOIM_CONFIG"
	envPrefix  = "MOIM_"
)

// EnvName returns the environment variable of key: MOIM_ plus the key in
// upper case with dots as underscores (http.addr → MOIM_HTTP_ADDR).
func EnvName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// FlagSet returns the flags Load understands, with the defaults, so a command
// can print them for --help (fs.FlagUsages()). Every key is a flag of the
// same name (--http.addr); --config names the YAML file.
func FlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String(configFlag, "", "YAML configuration file ("+configEnv+")")
	for _, l := range leaves(Default()) {
		usage := l.usage + " (" + EnvName(l.key) + ")"
		switch p := l.value.Addr().Interface().(type) {
		case *string:
			fs.String(l.key, *p, usage)
		case *int:
			fs.Int(l.key, *p, usage)
		case *bool:
			fs.Bool(l.key, *p, usage)
		case *int64:
			fs.Int64(l.key, *p, usage)
		case *time.Duration:
			fs.Duration(l.key, *p, usage)
		case *[]string:
			fs.StringSlice(l.key, *p, usage)
		case *map[string]int:
			fs.Var(newPairsValue(l.key, true, intsToStrings(*p)), l.key, usage)
		case *map[string]string:
			fs.Var(newPairsValue(l.key, false, *p), l.key, usage)
		}
	}
	return fs
}

// Load builds the configuration from, in rising precedence, the defaults,
// the YAML file named by --config or MOIM_CONFIG (none is fine; a named file
// that does not exist is an error, and so is any key the file has that
// moim does not know), the MOIM_* variables read through getenv, and the
// flags in args. A nil getenv reads no environment.
//
// Lists in the environment are comma-separated; maps are name=value pairs
// separated by commas (worker.queues "critical=6,default=3,low=1"). An empty
// variable counts as unset. A map from a higher source replaces the whole map
// of a lower one. --help yields an error wrapping pflag.ErrHelp; the caller
// prints FlagSet's usage.
func Load(args []string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	fs := FlagSet("moim")
	// The caller decides what to print; pflag would write to os.Stderr.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	// A private viper: nothing here touches viper's package-level instance.
	// Its environment support reads os.Getenv only, so the MOIM_* variables
	// come through getenv and are merged above the file below.
	v := viper.New()
	path, _ := fs.GetString(configFlag)
	if path == "" {
		path = getenv(configEnv)
	}
	if path != "" {
		if err := readFile(v, path); err != nil {
			return nil, err
		}
	}

	var c Config
	env := map[string]any{}
	defaults := leaves(Default())
	for _, l := range defaults {
		if l.value.Kind() == reflect.Map {
			continue // resolved below
		}
		if l.value.Kind() != reflect.Slice || !l.value.IsNil() {
			v.SetDefault(l.key, l.value.Interface())
		}
		if s := getenv(EnvName(l.key)); s != "" {
			setPath(env, l.key, s)
		}
		if err := v.BindPFlag(l.key, fs.Lookup(l.key)); err != nil {
			return nil, fmt.Errorf("bind flag %s: %w", l.key, err)
		}
	}
	if err := v.MergeConfigMap(env); err != nil {
		return nil, fmt.Errorf("merge environment: %w", err)
	}
	// Decoding goes on past a bad value so that every problem — bad types
	// here, bad values in Validate — is reported in one go.
	var problems []error
	if err := v.Unmarshal(&c, viper.DecodeHook(decodeHook())); err != nil {
		problems = append(problems, keyErrors(err))
	}

	// Maps are resolved here rather than by viper, which merges maps key by
	// key across sources; a map set higher up must replace a lower one.
	for i, field := range leaves(&c) {
		def := defaults[i]
		if def.value.Kind() != reflect.Map {
			continue
		}
		if def.key == providersKey {
			if !v.InConfig(def.key) {
				field.value.Set(def.value)
			}
			problems = append(problems, applyProviderEnv(&c, getenv)...)
			continue
		}
		ints := def.value.Type().Elem().Kind() == reflect.Int
		var pairs map[string]string
		switch {
		case fs.Changed(def.key):
			pairs = fs.Lookup(def.key).Value.(*pairsValue).m
		case getenv(EnvName(def.key)) != "":
			var err error
			if pairs, err = parsePairs(def.key, getenv(EnvName(def.key)), ints); err != nil {
				problems = append(problems, err)
				field.value.Set(def.value)
				continue
			}
		case v.InConfig(def.key):
			continue // decoded from the file already
		default:
			field.value.Set(def.value)
			continue
		}
		if ints {
			m := make(map[string]int, len(pairs))
			for k, s := range pairs {
				m[k], _ = strconv.Atoi(s) // parsePairs checked it
			}
			field.value.Set(reflect.ValueOf(m))
		} else {
			field.value.Set(reflect.ValueOf(pairs))
		}
	}

	if c.Log.Format == "" {
		c.Log.Format = "text"
		if c.IsProduction() {
			c.Log.Format = "json"
		}
	}
	if len(problems) > 0 {
		return nil, withValidation(&c, errors.Join(problems...))
	}
	return &c, nil
}

// withValidation adds Validate's lines to decode problems, leaving out keys
// that already have a line (a value that did not decode is zero, and
// "must be positive" would only repeat the real problem).
func withValidation(c *Config, decodeErr error) error {
	lines := strings.Split(decodeErr.Error(), "\n")
	reported := map[string]bool{}
	for _, l := range lines {
		key, _, _ := strings.Cut(l, ":")
		reported[key] = true
	}
	if verr := c.Validate(); verr != nil {
		for _, l := range strings.Split(verr.Error(), "\n") {
			if key, _, _ := strings.Cut(l, ":"); !reported[key] {
				lines = append(lines, l)
			}
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// readFile loads the YAML file at path into v and rejects keys moim does
// not know, so a misspelt key fails instead of being silently ignored.
func readFile(v *viper.Viper, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	known := map[string]bool{}
	var mapPrefixes []string
	for _, l := range leaves(Default()) {
		known[l.key] = true
		if l.value.Kind() == reflect.Map {
			mapPrefixes = append(mapPrefixes, l.key+".")
		}
	}
	var unknown []string
	// Nothing but the file has been given to v yet, so these are its keys.
	for _, k := range v.AllKeys() {
		if known[k] || slices.ContainsFunc(mapPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			continue
		}
		unknown = append(unknown, k)
	}
	unknown = append(unknown, unknownProviderKeys(v.AllKeys())...)
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config file %s: unknown keys: %s", path, strings.Join(unknown, ", "))
	}
	return nil
}

// setPath stores val in m under the dotted key as nested maps, the shape
// viper's config layer has.
func setPath(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = val
}

// decodeHook turns strings from the environment, flags and file into
// durations and lists. A bare number is refused as a duration: YAML's 30
// would otherwise mean 30ns.
func decodeHook() mapstructure.DecodeHookFuncType {
	durationType := reflect.TypeFor[time.Duration]()
	listType := reflect.TypeFor[[]string]()
	return func(_ reflect.Type, to reflect.Type, data any) (any, error) {
		switch to {
		case durationType:
			switch d := data.(type) {
			case time.Duration:
				return d, nil
			case string:
				dur, err := time.ParseDuration(strings.TrimSpace(d))
				if err != nil {
					return nil, errors.New("must be a duration such as 500ms, 5s, 15m or 336h")
				}
				return dur, nil
			default:
				return nil, errors.New("must be a duration with a unit, such as 5s, 15m or 336h")
			}
		case listType:
			if s, ok := data.(string); ok {
				return splitList(s), nil
			}
		}
		return data, nil
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// keyErrors rewrites decoding errors as "key: problem" lines, the format
// Validate uses.
func keyErrors(err error) error {
	var out []error
	var collect func(err error)
	collect = func(err error) {
		if de, ok := err.(*mapstructure.DecodeError); ok {
			cause := de.Unwrap()
			var pe *mapstructure.ParseError
			if errors.As(cause, &pe) && pe.Expected.Kind() >= reflect.Int && pe.Expected.Kind() <= reflect.Uint64 {
				cause = errors.New("must be a whole number")
			}
			out = append(out, fmt.Errorf("%s: %w", de.Name(), cause))
			return
		}
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				collect(inner)
			}
		case interface{ Unwrap() error }:
			collect(e.Unwrap())
		default:
			out = append(out, err)
		}
	}
	collect(err)
	return errors.Join(out...)
}

// parsePairs parses "a=1,b=2". For cron specs (ints false) a piece without
// "=" continues the previous value, since a spec may itself hold commas
// ("0 9,18 * * *") but never "=". Names are lower-cased like file keys.
func parsePairs(key, s string, ints bool) (map[string]string, error) {
	m := map[string]string{}
	last := ""
	for _, piece := range strings.Split(s, ",") {
		if strings.TrimSpace(piece) == "" {
			continue
		}
		name, val, ok := strings.Cut(piece, "=")
		if !ok {
			if !ints && last != "" {
				m[last] += "," + piece
				continue
			}
			return nil, fmt.Errorf("%s: %q is not name=value", key, strings.TrimSpace(piece))
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if name == "" {
			return nil, fmt.Errorf("%s: %q has no name", key, strings.TrimSpace(piece))
		}
		if ints {
			if _, err := strconv.Atoi(val); err != nil {
				return nil, fmt.Errorf("%s: weight of %q must be a whole number", key, name)
			}
		}
		m[name] = val
		last = name
	}
	for k, val := range m {
		m[k] = strings.TrimSpace(val)
	}
	return m, nil
}

// pairsValue is a map flag: the first use replaces the default, later uses
// add to it (as pflag's own map flags do).
type pairsValue struct {
	key     string
	ints    bool
	m       map[string]string
	changed bool
}

func newPairsValue(key string, ints bool, def map[string]string) *pairsValue {
	return &pairsValue{key: key, ints: ints, m: def}
}

func (p *pairsValue) Set(s string) error {
	m, err := parsePairs(p.key, s, p.ints)
	if err != nil {
		return err
	}
	if !p.changed {
		p.m = map[string]string{}
		p.changed = true
	}
	for k, v := range m {
		p.m[k] = v
	}
	return nil
}

func (p *pairsValue) String() string {
	names := make([]string, 0, len(p.m))
	for k := range p.m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + p.m[k]
	}
	return strings.Join(parts, ",")
}

func (p *pairsValue) Type() string {
	if p.ints {
		return "name=weight,..."
	}
	return "name=spec,..."
}

func intsToStrings(m map[string]int) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = strconv.Itoa(v)
	}
	return out
}
