{{/* Chart name, overridable. */}}
{{- define "confab-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name, truncated to 63 characters (DNS label limit), with no word twice:
- fullnameOverride when set;
- the release name when it already contains the chart name (the rule of
  `helm create`): release `confab-operator` → `confab-operator`;
- the chart name when it already starts with the release name: release
  `confab` → `confab-operator`, not `confab-confab-operator`;
- else release-chart: release `chat` → `chat-confab-operator`.
*/}}
{{- define "confab-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "confab-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "confab-operator.labels" -}}
helm.sh/chart: {{ include "confab-operator.chart" . }}
{{ include "confab-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: confab
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "confab-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "confab-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the ServiceAccount the operator runs as. */}}
{{- define "confab-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "confab-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Operator image reference. */}}
{{- define "confab-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Name of the leader-election Lease (one per release). */}}
{{- define "confab-operator.leaseName" -}}
{{- include "confab-operator.fullname" . }}
{{- end }}

{{/*
One PodMonitor endpoint: /metrics on the `http` port of the runtime pods whose
role matches .roles, over .scheme (an https one is not verified: a gateway's
certificate names its public host, not the pod), with the `chatcluster` and
`role` target labels.
*/}}
{{- define "confab-operator.runtimeEndpoint" -}}
- port: http
  path: /metrics
  scheme: {{ .scheme }}
  {{- if eq .scheme "https" }}
  tlsConfig:
    insecureSkipVerify: true
  {{- end }}
  {{- with .monitor.interval }}
  interval: {{ . }}
  {{- end }}
  {{- with .monitor.scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  relabelings:
    - action: keep
      sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
      regex: {{ .roles | quote }}
    - sourceLabels: [__meta_kubernetes_pod_label_confab_dev_cluster]
      targetLabel: chatcluster
    - sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
      targetLabel: role
{{- end }}
