{{- define "mediamesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; pass (dict "ctx" $ "component" "gateway"). */}}
{{- define "mediamesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: mediamesh
{{ include "mediamesh.selectorLabels" . }}
{{- end -}}

{{- define "mediamesh.selectorLabels" -}}
app.kubernetes.io/name: mediamesh
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mediamesh.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .name .ctx.Values.image.tag -}}
{{- end -}}

{{- define "mediamesh.secretName" -}}{{ include "mediamesh.fullname" . }}-secrets{{- end -}}
{{- define "mediamesh.gatewayUrl" -}}http://{{ include "mediamesh.fullname" . }}-gateway:{{ .Values.gateway.service.port }}{{- end -}}

{{/* A value kept across upgrades: the given one, else the one already in the Secret, else a new random one. */}}
{{- define "mediamesh.keptSecret" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "mediamesh.secretName" .ctx) -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* DATABASE_URL, REDIS_URL and GATEWAY_API_KEY, from the Secrets: every process of the mesh reads them. */}}
{{- define "mediamesh.connectionEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if and (not .Values.postgres.enabled) .Values.postgres.external.existingSecret }}
      name: {{ .Values.postgres.external.existingSecret }}
      key: {{ .Values.postgres.external.urlKey }}
      {{- else }}
      name: {{ include "mediamesh.secretName" . }}
      key: database-url
      {{- end }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      {{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret }}
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.urlKey }}
      {{- else }}
      name: {{ include "mediamesh.secretName" . }}
      key: redis-url
      {{- end }}
- name: GATEWAY_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.gateway.existingSecret | default (include "mediamesh.secretName" .) }}
      key: {{ if .Values.gateway.existingSecret }}{{ .Values.gateway.apiKeyKey }}{{ else }}api-key{{ end }}
- name: MEDIAMESH_HOME
  value: /data
{{- end -}}

{{- define "mediamesh.envMap" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "mediamesh.scrapeAnnotations" -}}
{{- if .ctx.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* The registry the gateway routes by (GATEWAY_SERVICES): every enabled model service at its Service. */}}
{{- define "mediamesh.gatewayServices" -}}
{{- $root := . -}}
{{- $registry := dict -}}
{{- range $name, $svc := .Values.modelServices -}}
{{- if $svc.enabled -}}
{{- $_ := set $registry $name (dict "url" (printf "http://%s-%s:%v" (include "mediamesh.fullname" $root) $name $svc.port) "kind" ($svc.kind | default $name)) -}}
{{- end -}}
{{- end -}}
{{- $registry | toJson -}}
{{- end -}}

{{- define "mediamesh.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The catalog services the enabled entries run (an entry's `kind`, else its name), once each. */}}
{{- define "mediamesh.enabledKinds" -}}
{{- $kinds := list -}}
{{- range $name, $svc := .Values.modelServices -}}
{{- if $svc.enabled -}}
{{- $kinds = append $kinds ($svc.kind | default $name) -}}
{{- end -}}
{{- end -}}
{{- $kinds | uniq | toJson -}}
{{- end -}}
