{{/* Names, labels and shared values of the chart. */}}

{{- define "schema-overseer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-schema-overseer, or the release name when it already contains the chart name. */}}
{{- define "schema-overseer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "schema-overseer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "schema-overseer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "schema-overseer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "schema-overseer.labels" -}}
helm.sh/chart: {{ include "schema-overseer.chart" . }}
{{ include "schema-overseer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: schema-overseer
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "schema-overseer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "schema-overseer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the ServiceAccount to run as (serviceAccount.create is false)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {registry, repository, tag, digest}; the tag defaults to appVersion. */}}
{{- define "schema-overseer.image" -}}
{{- $image := .image }}
{{- $repository := $image.repository }}
{{- with $image.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "schema-overseer.webhookService" -}}
{{- include "schema-overseer.fullname" . }}-webhook
{{- end }}

{{- define "schema-overseer.webhookSecret" -}}
{{- include "schema-overseer.fullname" . }}-webhook-tls
{{- end }}

{{/* The DNS names the API server may use for the webhook Service. */}}
{{- define "schema-overseer.webhookDNSNames" -}}
{{- $service := include "schema-overseer.webhookService" . }}
{{- list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) | toJson }}
{{- end }}

{{/*
The webhook TLS material when the chart makes it (cert-manager disabled), as JSON
{"ca": PEM, "cert": PEM, "key": PEM, "notAfter": unix seconds}. Made once per render and memoised,
so the Secret, the webhooks' caBundle and the pod's checksum all see the same certificate. An
existing Secret of the release (lookup; empty under `helm template` and client-side dry runs) is
kept until it is within renewDaysBefore of expiry: upgrades do not rotate the CA.
*/}}
{{- define "schema-overseer.webhookTLS" -}}
{{- if not (hasKey .Values "_webhookTLS") }}
{{- $cfg := .Values.webhook.certificate }}
{{- $renewAt := add (now | unixEpoch) (mul $cfg.renewDaysBefore 86400) }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "schema-overseer.webhookSecret" .) }}
{{- $data := dict }}
{{- if $existing }}{{ $data = default (dict) $existing.data }}{{ end }}
{{- $notAfter := 0 }}
{{- if $existing }}{{ $notAfter = int64 (default "0" (index (default (dict) $existing.metadata.annotations) "overseer.dev/not-after")) }}{{ end }}
{{- $tls := dict }}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") (gt $notAfter $renewAt) }}
{{- $tls = dict "ca" (index $data "ca.crt" | b64dec) "cert" (index $data "tls.crt" | b64dec) "key" (index $data "tls.key" | b64dec) "notAfter" $notAfter }}
{{- else }}
{{- $days := int $cfg.validityDays }}
{{- /* ECDSA P-256: as strong as RSA-3072 for this use, and made in milliseconds. */}}
{{- $ca := genCAWithKey (printf "%s-webhook-ca" (include "schema-overseer.fullname" .)) $days (genPrivateKey "ecdsa") }}
{{- $names := include "schema-overseer.webhookDNSNames" . | fromJsonArray }}
{{- $cert := genSignedCertWithKey (index $names 2) nil $names $days $ca (genPrivateKey "ecdsa") }}
{{- $tls = dict "ca" $ca.Cert "cert" $cert.Cert "key" $cert.Key "notAfter" (add (now | unixEpoch) (mul $days 86400)) }}
{{- end }}
{{- $_ := set .Values "_webhookTLS" $tls }}
{{- end }}
{{- .Values._webhookTLS | toJson }}
{{- end }}
