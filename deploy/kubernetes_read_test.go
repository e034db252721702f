package deploy

// Readers of the Kubernetes manifests: the kustomization, every object it
// lists decoded strictly into its API type, and the Secrets deploy/README.md
// tells the operator to create.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomization.yaml the manifests use; a
// field it does not know fails the strict decoding.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

// kinds are the objects the manifests may hold, by apiVersion and kind,
// each with the API type it must decode into.
var kinds = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

// object is one decoded manifest and the file it came from.
type object struct {
	file string
	kind string
	obj  any
}

// docSeparator splits a YAML file into its documents.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// readManifests decodes kustomization.yaml and, strictly, every document of
// every file it lists. It fails on a file of the directory it does not list.
func readManifests(t *testing.T, dir string) (kustomization, []object) {
	t.Helper()
	var k kustomization
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not among the resources of kustomization.yaml", base)
		}
	}
	var out []object
	for _, res := range k.Resources {
		data, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", res, err)
			continue
		}
		for i, doc := range docSeparator.Split(string(data), -1) {
			if onlyComments(doc) {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Errorf("%s, document %d: %v", res, i+1, err)
				continue
			}
			kind := tm.APIVersion + "/" + tm.Kind
			newObj, ok := kinds[kind]
			switch {
			case tm.Kind == "Secret":
				t.Errorf("%s holds a Secret: Secrets are created with kubectl (deploy/README.md), never kept in the repository, not even with placeholder values", res)
				continue
			case !ok:
				t.Errorf("%s, document %d: %s is no kind this test knows", res, i+1, kind)
				continue
			}
			obj := newObj()
			if err := decodeStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s, %s: %v", res, kind, err)
				continue
			}
			out = append(out, object{file: res, kind: tm.Kind, obj: obj})
		}
	}
	return k, out
}

// decodeStrict decodes a YAML document into v as the API server would in
// strict mode: field names match case-sensitively, and a duplicate or
// unknown field is an error.
func decodeStrict(doc []byte, v any) error {
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(data, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// onlyComments says whether a YAML document holds nothing but comments and
// blank lines.
func onlyComments(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

var (
	createSecret = regexp.MustCompile(`kubectl .*create secret generic ([a-z0-9-]+)(.*)`)
	fromKey      = regexp.MustCompile(`--from-(?:literal|file)=([A-Za-z0-9._-]+)=`)
)

// documentedSecrets returns the keys of each Secret a `kubectl create secret
// generic` command of the README creates, by Secret name.
func documentedSecrets(t *testing.T, readme string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	joined := bytes.ReplaceAll(data, []byte("\\\n"), []byte(" "))
	out := map[string][]string{}
	for _, m := range createSecret.FindAllStringSubmatch(string(joined), -1) {
		for _, k := range fromKey.FindAllStringSubmatch(m[2], -1) {
			out[m[1]] = append(out[m[1]], k[1])
		}
	}
	return out
}
