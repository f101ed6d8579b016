/* placeholder: the YAML configuration (issue: registry, SDK and YAML) */
#ifndef QK_CORE_CONFIG_H
#define QK_CORE_CONFIG_H
#endif
