package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moim/moim/config"
)

func writeTestConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "moim.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSocialProviders(t *testing.T) {
	t.Parallel()
	const secret = "kakao-secret-never-logged"
	path := writeTestConfig(t, `
http:
  public_url: https://moim.example/
auth:
  providers:
    kakao:
      client_id: kakao-id
    sso:
      kind: oidc
      issuer: https://sso.example.com/realms/moim
      client_id: moim
      client_secret: sso-secret
      redirect_url: https://api.moim.example/v1/auth/oauth/sso/callback
`)
	c := load(t, []string{"--config", path}, map[string]string{
		"MOIM_AUTH_PROVIDERS_KAKAO_CLIENT_SECRET": secret,
		// A preset configured by the environment alone.
		"MOIM_AUTH_PROVIDERS_NAVER_CLIENT_ID":     "naver-id",
		"MOIM_AUTH_PROVIDERS_NAVER_CLIENT_SECRET": "naver-secret",
		"MOIM_AUTH_PROVIDERS_NAVER_TRUST_EMAIL":   "true",
	})
	got := map[string]config.SocialProvider{}
	for _, p := range c.SocialProviders() {
		got[p.Name] = p
	}
	want := map[string]config.SocialProvider{
		"kakao": {Name: "kakao", ProviderConfig: config.ProviderConfig{Kind: "oidc", ClientID: "kakao-id", ClientSecret: secret,
			Scopes: []string{"openid", "profile_nickname", "account_email"}, Issuer: "https://kauth.kakao.com",
			RedirectURL: "https://moim.example/v1/auth/oauth/kakao/callback"}},
		"naver": {Name: "naver", ProviderConfig: config.ProviderConfig{Kind: "oauth2", ClientID: "naver-id", ClientSecret: "naver-secret",
			RedirectURL: "https://moim.example/v1/auth/oauth/naver/callback",
			AuthURL:     "https://nid.naver.com/oauth2.0/authorize", TokenURL: "https://nid.naver.com/oauth2.0/token",
			UserInfoURL: "https://openapi.naver.com/v1/nid/me", IDField: "response.id", EmailField: "response.email",
			NicknameField: "response.nickname", TrustEmail: true}},
		"sso": {Name: "sso", ProviderConfig: config.ProviderConfig{Kind: "oidc", ClientID: "moim", ClientSecret: "sso-secret",
			Issuer: "https://sso.example.com/realms/moim", RedirectURL: "https://api.moim.example/v1/auth/oauth/sso/callback"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SocialProviders (-want +got):\n%s", diff)
	}

	masked, err := json.Marshal(c.Masked())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(masked), secret) || strings.Contains(string(masked), "sso-secret") {
		t.Errorf("Masked shows a client secret: %s", masked)
	}
	if m := c.Masked(); m["auth.providers.kakao.client_secret"] != "****" || m["auth.providers.kakao.client_id"] != "kakao-id" {
		t.Errorf("Masked kakao = %v / %v, want **** / kakao-id",
			m["auth.providers.kakao.client_secret"], m["auth.providers.kakao.client_id"])
	}
}

func TestSocialProvidersRejected(t *testing.T) {
	t.Parallel()
	path := writeTestConfig(t, `
auth:
  providers:
    kakao:
      client_id: kakao-id
    custom:
      client_id: x
      client_secret: y
      redirect_url: https://moim.example/cb
    plain:
      kind: oauth2
      client_id: x
      client_secret: y
      redirect_url: https://moim.example/cb
      auth_url: not-a-url
    Bad_Name:
      kind: oidc
`)
	err := load(t, []string{"--config", path}, nil).Validate()
	want := []string{
		"auth.providers.bad_name: a provider's name must be lower-case letters and digits, at most 32",
		"auth.providers.custom.kind: must be oidc or oauth2 (only the presets google, intra42, kakao, naver have one)",
		"auth.providers.kakao.client_secret: is required",
		"auth.providers.kakao.redirect_url: is required when http.public_url is empty",
		"auth.providers.plain.auth_url: must be an http:// or https:// URL",
		"auth.providers.plain.id_field: is required",
		"auth.providers.plain.token_url: is required",
		"auth.providers.plain.user_info_url: is required",
	}
	if diff := cmp.Diff(want, lines(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	path = writeTestConfig(t, "auth:\n  providers:\n    kakao:\n      client_secrte: oops\n")
	if _, err := config.Load([]string{"--config", path}, nil); err == nil || !strings.Contains(err.Error(), "auth.providers.kakao.client_secrte") {
		t.Errorf("misspelt provider key: error = %v, want it named", err)
	}
}
