package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/moim/moim/domain"
)

// providersKey is the key of the social-login providers.
const providersKey = "auth.providers"

// The kinds of social-login provider (ProviderConfig.Kind).
const (
	ProviderOIDC   = "oidc"
	ProviderOAuth2 = "oauth2"
)

// providerPresets fill in the providers moim knows by name, so that their
// config is a client id and secret. Kakao and Google speak OIDC; Naver and
// 42's intra are plain OAuth2 with a user-info URL. None of the OAuth2 ones
// says whether its address is verified, so their accounts link to an
// existing member only from a logged-in member (or with trust_email).
var providerPresets = map[string]ProviderConfig{
	"kakao": {Kind: ProviderOIDC, Issuer: "https://kauth.kakao.com",
		Scopes: []string{"openid", "profile_nickname", "account_email"}},
	"google": {Kind: ProviderOIDC, Issuer: "https://accounts.google.com",
		Scopes: []string{"openid", "email", "profile"}},
	"naver": {Kind: ProviderOAuth2,
		AuthURL:     "https://nid.naver.com/oauth2.0/authorize",
		TokenURL:    "https://nid.naver.com/oauth2.0/token",
		UserInfoURL: "https://openapi.naver.com/v1/nid/me",
		IDField:     "response.id", EmailField: "response.email", NicknameField: "response.nickname"},
	"intra42": {Kind: ProviderOAuth2, Scopes: []string{"public"},
		AuthURL:     "https://api.intra.42.fr/oauth/authorize",
		TokenURL:    "https://api.intra.42.fr/oauth/token",
		UserInfoURL: "https://api.intra.42.fr/v2/me",
		IDField:     "id", EmailField: "email", NicknameField: "login"},
}

// SocialProvider is a configured provider with its preset applied.
type SocialProvider struct {
	Name string
	ProviderConfig
}

// SocialProviders returns auth.providers by name, each with the empty
// fields filled from the preset of its name and the redirect URL from
// http.public_url when it has none.
func (c *Config) SocialProviders() []SocialProvider {
	out := make([]SocialProvider, 0, len(c.Auth.Providers))
	for _, name := range sortedKeys(c.Auth.Providers) {
		p := c.Auth.Providers[name]
		if preset, ok := providerPresets[name]; ok {
			fillEmpty(reflect.ValueOf(&p).Elem(), reflect.ValueOf(preset))
		}
		if p.RedirectURL == "" && c.HTTP.PublicURL != "" {
			p.RedirectURL = strings.TrimRight(c.HTTP.PublicURL, "/") + "/v1/auth/oauth/" + name + "/callback"
		}
		out = append(out, SocialProvider{Name: name, ProviderConfig: p})
	}
	return out
}

// fillEmpty sets each zero field of dst to src's.
func fillEmpty(dst, src reflect.Value) {
	for i := range dst.NumField() {
		if dst.Field(i).IsZero() {
			dst.Field(i).Set(src.Field(i))
		}
	}
}

// providerFields are ProviderConfig's keys in declaration order.
func providerFields() []reflect.StructField {
	t := reflect.TypeFor[ProviderConfig]()
	out := make([]reflect.StructField, t.NumField())
	for i := range out {
		out[i] = t.Field(i)
	}
	return out
}

// applyProviderEnv reads MOIM_AUTH_PROVIDERS_<NAME>_<KEY> for every
// provider in the file and every preset name, so a secret never has to be
// in the file and a preset can be configured by the environment alone.
func applyProviderEnv(c *Config, getenv func(string) string) []error {
	names := map[string]bool{}
	for n := range c.Auth.Providers {
		names[n] = true
	}
	for n := range providerPresets {
		names[n] = true
	}
	var problems []error
	for _, name := range sortedKeys(names) {
		p, seen := c.Auth.Providers[name]
		set := false
		v := reflect.ValueOf(&p).Elem()
		for i, f := range providerFields() {
			key := providersKey + "." + name + "." + f.Tag.Get("mapstructure")
			s := getenv(EnvName(key))
			if s == "" {
				continue
			}
			set = true
			switch fv := v.Field(i); fv.Kind() {
			case reflect.String:
				fv.SetString(s)
			case reflect.Slice:
				fv.Set(reflect.ValueOf(splitList(s)))
			case reflect.Bool:
				b, err := strconv.ParseBool(s)
				if err != nil {
					problems = append(problems, fmt.Errorf("%s: must be true or false", key))
				}
				fv.SetBool(b)
			}
		}
		if set || seen {
			if c.Auth.Providers == nil {
				c.Auth.Providers = map[string]ProviderConfig{}
			}
			c.Auth.Providers[name] = p
		}
	}
	return problems
}

// unknownProviderKeys returns the file keys under auth.providers that are
// no provider key (a misspelt client_secret, say).
func unknownProviderKeys(fileKeys []string) []string {
	known := map[string]bool{}
	for _, f := range providerFields() {
		known[f.Tag.Get("mapstructure")] = true
	}
	var out []string
	for _, k := range fileKeys {
		rest, ok := strings.CutPrefix(k, providersKey+".")
		if !ok {
			continue
		}
		if _, field, ok := strings.Cut(rest, "."); !ok || !known[field] {
			out = append(out, k)
		}
	}
	return out
}

// maskedProviders flattens the providers into auth.providers.<name>.<key>
// entries, client secrets masked.
func maskedProviders(providers map[string]ProviderConfig) []keyValue {
	var out []keyValue
	for _, name := range sortedKeys(providers) {
		v := reflect.ValueOf(providers[name])
		for i, f := range providerFields() {
			val := v.Field(i).Interface()
			if f.Tag.Get("secret") != "" && val.(string) != "" {
				val = mask
			}
			if l, ok := val.([]string); ok {
				val = append([]string{}, l...)
			}
			out = append(out, keyValue{providersKey + "." + name + "." + f.Tag.Get("mapstructure"), val})
		}
	}
	return out
}

// validateProviders checks each provider as its preset completes it.
func (c *Config) validateProviders(add func(key, format string, args ...any)) {
	for _, p := range c.SocialProviders() {
		key := providersKey + "." + p.Name
		if !domain.ValidProviderName(p.Name) {
			add(key, "a provider's name must be lower-case letters and digits, at most %d", domain.MaxProviderNameLen)
			continue
		}
		required := func(field, v string) {
			if v == "" {
				add(key+"."+field, "is required")
			}
		}
		httpURL := func(field, v string) {
			if v == "" {
				add(key+"."+field, "is required")
			} else if !validHTTPURL(v, true) {
				add(key+"."+field, "must be an http:// or https:// URL")
			}
		}
		required("client_id", p.ClientID)
		required("client_secret", p.ClientSecret)
		switch {
		case p.RedirectURL == "":
			add(key+".redirect_url", "is required when http.public_url is empty")
		case !validHTTPURL(p.RedirectURL, true):
			add(key+".redirect_url", "must be an http:// or https:// URL")
		}
		switch p.Kind {
		case ProviderOIDC:
			httpURL("issuer", p.Issuer)
		case ProviderOAuth2:
			httpURL("auth_url", p.AuthURL)
			httpURL("token_url", p.TokenURL)
			httpURL("user_info_url", p.UserInfoURL)
			required("id_field", p.IDField)
		default:
			presets := make([]string, 0, len(providerPresets))
			for n := range providerPresets {
				presets = append(presets, n)
			}
			sort.Strings(presets)
			add(key+".kind", "must be %s or %s (only the presets %s have one)", ProviderOIDC, ProviderOAuth2, strings.Join(presets, ", "))
		}
	}
}
