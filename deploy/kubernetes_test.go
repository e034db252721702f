package deploy

import (
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fileFlags are the flags that name a file; in a pod the file must come
// from a mounted Secret.
var fileFlags = []string{"auth", "kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key"}

// workload is a Deployment or StatefulSet of the manifests.
type workload struct {
	kind        string
	name        string
	selector    *metav1.LabelSelector
	pod         corev1.PodTemplateSpec
	serviceName string // a StatefulSet's
}

// TestKubernetes keeps deploy/kubernetes honest without a cluster: every
// manifest decodes strictly into its API type, every container runs a
// binary of the image with flags and PRESENCE_* variables its --help lists,
// secrets come from Secrets the README creates, probes, Services and the
// ServiceMonitor reach ports the binaries listen on, and every pod is
// locked down and covered by a PodDisruptionBudget.
func TestKubernetes(t *testing.T) {
	root := filepath.Dir(mustGetwd(t))
	k, objs := readManifests(t, filepath.Join(root, "deploy", "kubernetes"))
	m := sortObjects(t, k, objs)
	flags := helpFlags(t, root)
	img := readDockerfile(t, filepath.Join(root, "deploy", "Dockerfile"))
	secrets := documentedSecrets(t, filepath.Join(root, "deploy", "README.md"))

	run := map[string]bool{}
	metrics := map[string]int32{}
	for _, w := range m.workloads {
		t.Run(strings.ToLower(w.kind)+"/"+w.name, func(t *testing.T) {
			checkWorkload(t, w, m)
			var b string
			b, metrics[w.name] = checkContainer(t, w, w.pod.Spec.Containers[0], flags, img, secrets, m.configs)
			run[b] = true
		})
	}
	t.Run("binaries", func(t *testing.T) {
		for _, name := range services {
			if !run[name] {
				t.Errorf("no pod runs %s", name)
			}
		}
	})
	for _, s := range m.services {
		t.Run("service/"+s.Name, func(t *testing.T) {
			checkService(t, s, m.workloads)
		})
	}
	t.Run("servicemonitor", func(t *testing.T) {
		checkMonitors(t, m, metrics)
	})
}

// manifests are the decoded objects, by kind.
type manifests struct {
	workloads []workload
	services  []*corev1.Service
	pdbs      []*policyv1.PodDisruptionBudget
	monitors  []*monitoringv1.ServiceMonitor
	configs   map[string]map[string]string // ConfigMap data by name
}

// sortObjects sorts the objects by kind, checking that all are in the
// kustomization's namespace, which one of them creates, that each pod has
// one container, and that no ConfigMap holds a secret.
func sortObjects(t *testing.T, k kustomization, objs []object) manifests {
	t.Helper()
	m := manifests{configs: map[string]map[string]string{}}
	namespaces := 0
	for _, o := range objs {
		var meta metav1.ObjectMeta
		switch v := o.obj.(type) {
		case *corev1.Namespace:
			namespaces++
			if v.Name != k.Namespace {
				t.Errorf("%s creates namespace %q, kustomization.yaml puts everything in %q", o.file, v.Name, k.Namespace)
			}
			continue
		case *appsv1.Deployment:
			meta = v.ObjectMeta
			m.workloads = append(m.workloads, workload{o.kind, v.Name, v.Spec.Selector, v.Spec.Template, ""})
		case *appsv1.StatefulSet:
			meta = v.ObjectMeta
			m.workloads = append(m.workloads, workload{o.kind, v.Name, v.Spec.Selector, v.Spec.Template, v.Spec.ServiceName})
		case *corev1.Service:
			meta = v.ObjectMeta
			m.services = append(m.services, v)
		case *policyv1.PodDisruptionBudget:
			meta = v.ObjectMeta
			m.pdbs = append(m.pdbs, v)
		case *monitoringv1.ServiceMonitor:
			meta = v.ObjectMeta
			m.monitors = append(m.monitors, v)
		case *corev1.ConfigMap:
			meta = v.ObjectMeta
			m.configs[v.Name] = v.Data
			for key := range v.Data {
				if secretName.MatchString(strings.ToUpper(strings.ReplaceAll(key, "-", "_"))) {
					t.Errorf("ConfigMap %s holds %s: a secret belongs in a Secret", v.Name, key)
				}
			}
		}
		if meta.Namespace != "" && meta.Namespace != k.Namespace {
			t.Errorf("%s %s is in namespace %q, not %q", o.kind, meta.Name, meta.Namespace, k.Namespace)
		}
	}
	if k.Namespace == "" || namespaces != 1 {
		t.Errorf("kustomization.yaml sets namespace %q and the manifests create %d namespaces; want one, the same", k.Namespace, namespaces)
	}
	for _, w := range m.workloads {
		if n := len(w.pod.Spec.Containers); n != 1 {
			t.Fatalf("the pods of %s have %d containers, want one", w.name, n)
		}
	}
	return m
}

// checkService checks that a Service selects pods and targets ports they
// declare.
func checkService(t *testing.T, s *corev1.Service, workloads []workload) {
	if len(selected(t, s, workloads)) == 0 {
		t.Errorf("Service %s selects no pods", s.Name)
	}
	for _, w := range selected(t, s, workloads) {
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if containerPort(w.pod.Spec.Containers[0], target) == 0 {
				t.Errorf("port %s of Service %s targets %s, which the pods of %s do not declare", p.Name, s.Name, target.String(), w.name)
			}
		}
	}
}

// checkMonitors checks that the ServiceMonitors scrape /metrics of every
// workload, on the port each serves it on (metrics, by workload name).
func checkMonitors(t *testing.T, m manifests, metrics map[string]int32) {
	if len(m.monitors) == 0 {
		t.Fatal("no ServiceMonitor")
	}
	scraped := map[string]bool{}
	for _, mon := range m.monitors {
		if !reflect.ValueOf(mon.Spec.NamespaceSelector).IsZero() {
			t.Errorf("ServiceMonitor %s has a namespaceSelector: it scrapes the Services of its own namespace", mon.Name)
		}
		for _, s := range m.services {
			if !selects(t, &mon.Spec.Selector, s.Labels) {
				continue
			}
			for _, e := range mon.Spec.Endpoints {
				if e.Path != "" && e.Path != "/metrics" {
					t.Errorf("ServiceMonitor %s scrapes %s, the services serve /metrics", mon.Name, e.Path)
				}
				i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port })
				if e.Port == "" || i < 0 {
					t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not name", mon.Name, e.Port, s.Name)
					continue
				}
				for _, w := range selected(t, s, m.workloads) {
					if got := containerPort(w.pod.Spec.Containers[0], s.Spec.Ports[i].TargetPort); got != metrics[w.name] {
						t.Errorf("ServiceMonitor %s scrapes %s on port %d, it serves /metrics on %d", mon.Name, w.name, got, metrics[w.name])
					}
					scraped[w.name] = true
				}
			}
		}
	}
	for _, w := range m.workloads {
		if !scraped[w.name] {
			t.Errorf("no ServiceMonitor scrapes %s", w.name)
		}
	}
}

// selected returns the workloads whose pods a Service selects.
func selected(t *testing.T, s *corev1.Service, workloads []workload) []workload {
	t.Helper()
	var out []workload
	for _, w := range workloads {
		if selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.pod.Labels) {
			out = append(out, w)
		}
	}
	return out
}

// checkWorkload checks that a workload's selector selects its own pods and
// no other's, a Service and a PodDisruptionBudget cover them, and the pod
// is locked down.
func checkWorkload(t *testing.T, w workload, m manifests) {
	all, pdbs, services := m.workloads, m.pdbs, m.services
	if !slices.ContainsFunc(services, func(s *corev1.Service) bool { return len(selected(t, s, []workload{w})) > 0 }) {
		t.Errorf("no Service selects the pods of %s", w.name)
	}
	if w.kind == "StatefulSet" {
		i := slices.IndexFunc(services, func(s *corev1.Service) bool { return s.Name == w.serviceName })
		if i < 0 || services[i].Spec.ClusterIP != corev1.ClusterIPNone || len(selected(t, services[i], []workload{w})) == 0 {
			t.Errorf("StatefulSet %s names Service %q, which is no headless Service selecting its pods", w.name, w.serviceName)
		}
	}
	for _, other := range all {
		if got, want := selects(t, w.selector, other.pod.Labels), other.name == w.name; got != want {
			t.Errorf("the selector of %s %s selects the pods of %s: %v, want %v", w.kind, w.name, other.name, got, want)
		}
	}
	if !slices.ContainsFunc(pdbs, func(p *policyv1.PodDisruptionBudget) bool { return selects(t, p.Spec.Selector, w.pod.Labels) }) {
		t.Errorf("no PodDisruptionBudget selects the pods of %s", w.name)
	}
	spec := w.pod.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token: it calls no Kubernetes API")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("the pod shares a namespace of the host")
	}
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("container %s has no securityContext", c.Name)
			continue
		case !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot):
			t.Errorf("container %s may run as root: set runAsNonRoot", c.Name)
		case sc.RunAsUser != nil && *sc.RunAsUser == 0:
			t.Errorf("container %s runs as uid 0", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s allows privilege escalation", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s can write its root filesystem", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s keeps capabilities: drop ALL, add none", c.Name)
		}
	}
}

// selects says whether a label selector selects pods with these labels.
func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// containerPort resolves a probe's or Service's port, by name or number,
// among the ports a container declares; 0 when it declares none such.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// listenPort is the port a flag holding a listen address opens, from the
// container's settings or the flag's default; "" when neither sets it.
func listenPort(t *testing.T, given map[string]setting, fl map[string]flagInfo, flag string) string {
	t.Helper()
	v, ok := given[flag]
	if !ok {
		v = setting{value: fl[flag].def, from: "default --" + flag}
	}
	if v.value == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(v.value)
	if err != nil {
		t.Errorf("%s %q: %v", v.from, v.value, err)
	}
	return port
}

// mustGetwd is the test's working directory, deploy/.
func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// varRef is a $(NAME) of a container's args, which Kubernetes replaces by
// the container's variable NAME.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podName says whether a container variable holds the pod's name.
func podName(c corev1.Container, name string) bool {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	return i >= 0 && c.Env[i].ValueFrom != nil && c.Env[i].ValueFrom.FieldRef != nil && c.Env[i].ValueFrom.FieldRef.FieldPath == "metadata.name"
}

// hasCredentials says whether a literal value is a URL holding a password.
func hasCredentials(v string) bool {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return false
	}
	_, set := u.User.Password()
	return set
}

// atoi32 is a port number as the manifests write it.
func atoi32(s string) int32 {
	n, _ := strconv.Atoi(s)
	return int32(n)
}
